// goclient: the Go program of tests/tests/supervise.rs, built static
// (CGO_ENABLED=0) and dynamic (CGO_ENABLED=1) by the test. Go makes its
// own system calls, past libc, so only supervision can bind it.
//
//	goclient URL HOST:PORT
//
// Fetches URL (by name: Go's own resolver, or libc's through cgo, sends to
// port 53), then sends one UDP datagram to HOST:PORT from an unconnected
// socket (sendto with an address) and one from a connected socket; prints
// the body and each answer on a line, or `error ...`. Exits 1 on an error.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	failed := false
	say := func(answer string, err error) {
		if err != nil {
			fmt.Println("error", err)
			failed = true
			return
		}
		fmt.Println(strings.TrimSpace(answer))
	}

	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(os.Args[1])
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		say(string(body), nil)
	} else {
		say("", err)
	}

	target, err := net.ResolveUDPAddr("udp", os.Args[2])
	if err != nil {
		say("", err)
		os.Exit(1)
	}
	buf := make([]byte, 512)
	if conn, err := net.ListenUDP("udp", nil); err == nil {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.WriteTo([]byte("ping"), target); err != nil {
			say("", err)
		} else {
			n, _, err := conn.ReadFrom(buf)
			say(string(buf[:n]), err)
		}
		conn.Close()
	} else {
		say("", err)
	}
	if conn, err := net.DialUDP("udp", nil, target); err == nil {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write([]byte("ping")); err != nil {
			say("", err)
		} else {
			n, err := conn.Read(buf)
			say(string(buf[:n]), err)
		}
		conn.Close()
	} else {
		say("", err)
	}
	if failed {
		os.Exit(1)
	}
}
