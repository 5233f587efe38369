/*
 * plugin.so: a "plugin" as PHP's extensions are, loaded by the host
 * program `plugins` (plugins.c) with dlopen or dlmopen, often with
 * RTLD_DEEPBIND (tests/tests/side_doors_plugins.rs).
 *
 *   plugin_udp(host, port, connected, out, size)
 *       one datagram to host:port (IPv4) from a UDP socket, connected
 *       first (PHP's socket_connect + socket_send) or not (socket_sendto);
 *       the uplink server's answer line in `out`, or `error ENAME`.
 *   plugin_scope()
 *       "plugin" when the plugin's own bindto_test_scope() is found
 *       before the host program's (RTLD_DEEPBIND), "host" otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *errname(int e)
{
    const char *name = strerrorname_np(e);
    return name ? name : "E?";
}

int plugin_udp(const char *host, int port, int connected, char *out, size_t size)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        snprintf(out, size, "error bad address");
        return -1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        snprintf(out, size, "error socket %s", errname(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t sent;
    if (connected) {
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            snprintf(out, size, "error %s", errname(errno));
            close(fd);
            return -1;
        }
        sent = send(fd, "hello\n", 6, 0);
    } else {
        sent = sendto(fd, "hello\n", 6, 0, (struct sockaddr *)&a, sizeof a);
    }
    if (sent < 0) {
        snprintf(out, size, "error %s", errname(errno));
        close(fd);
        return -1;
    }
    ssize_t n = recv(fd, out, size - 1, 0);
    close(fd);
    if (n <= 0) {
        snprintf(out, size, "error no answer");
        return -1;
    }
    out[n] = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = 0;
    return 0;
}

const char *bindto_test_scope(void)
{
    return "plugin";
}

const char *plugin_scope(void)
{
    return bindto_test_scope();
}
