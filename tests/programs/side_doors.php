<?php
// PHP opens its extensions (sockets, curl) with RTLD_DEEPBIND: a UDP
// datagram connected and one sent, then an HTTP request by name with the
// curl extension (tests/tests/side_doors_plugins.rs). One line each.
$s = socket_create(AF_INET, SOCK_DGRAM, SOL_UDP);
socket_set_option($s, SOL_SOCKET, SO_RCVTIMEO, ["sec" => 5, "usec" => 0]);
socket_connect($s, "198.19.0.1", 7);
socket_send($s, "hello\n", 6, 0);
echo "connected ", trim(socket_read($s, 256)), "\n";
$u = socket_create(AF_INET, SOCK_DGRAM, SOL_UDP);
socket_set_option($u, SOL_SOCKET, SO_RCVTIMEO, ["sec" => 5, "usec" => 0]);
socket_sendto($u, "hello\n", 6, 0, "198.19.0.1", 7);
socket_recvfrom($u, $buf, 256, 0, $from, $port);
echo "sendto ", trim($buf), "\n";
$c = curl_init("http://host.bindto.test/");
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
curl_setopt($c, CURLOPT_TIMEOUT, 5);
$body = curl_exec($c);
echo "curl ", $body === false ? curl_error($c) : trim($body), "\n";
