/* The client that every per-connect benchmark runs, with and without a
 * preload:
 *
 *     netloop tcp N    N loopback TCP connects (socket, connect, close; the
 *                      listener in the same process accepts and resets)
 *     netloop udp N    N sendto of 16 bytes on one unconnected UDP socket
 *     netloop first    the first UDP socket+connect of the process, then a
 *                      second one (the first pays the preload's set-up)
 *     netloop rss      one UDP socket+connect, then VmRSS, RssAnon and
 *                      RssFile in KiB
 *
 * tcp and udp make one operation first (which pays for any set-up of a
 * preload), then time N more and print nanoseconds per operation. Every
 * run's syscalls and instructions are the same whatever N is, apart from N
 * times the loop body, so runs of N and 2N give the cost of one operation
 * exactly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* A socket of `type` bound to 127.0.0.1 on a free port; its address in `addr`. */
static int local(int type, struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    int fd = socket(AF_INET, type, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0)
        die("local socket");
    return fd;
}

/* One connect, accepted and reset. */
static void tcp_once(int listener, const struct sockaddr_in *addr)
{
    static const struct linger reset = {1, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
        die("connect");
    int peer = accept(listener, NULL, NULL);
    if (peer < 0)
        die("accept");
    /* A reset instead of a FIN: no TIME_WAIT, so repeated runs never run
     * out of ports. */
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(peer);
    close(fd);
}

/* The measured loops: callgrind counts only inside them
 * (--toggle-collect=tcp_loop), after a first call that pays any set-up. */
__attribute__((noinline)) void tcp_loop(long n, int listener, const struct sockaddr_in *addr)
{
    for (long i = 0; i < n; i++)
        tcp_once(listener, addr);
}

__attribute__((noinline)) void udp_loop(long n, int fd, const struct sockaddr_in *addr)
{
    static const char payload[16] = "bindto benchmar";
    for (long i = 0; i < n; i++)
        if (sendto(fd, payload, sizeof payload, 0, (const struct sockaddr *)addr, sizeof *addr) < 0)
            die("sendto");
}

static void tcp(long n)
{
    struct sockaddr_in addr;
    int listener = local(SOCK_STREAM, &addr);
    if (listen(listener, 64) < 0)
        die("listen");
    tcp_once(listener, &addr);
    long long start = now_ns();
    tcp_loop(n, listener, &addr);
    printf("%.1f\n", (double)(now_ns() - start) / (double)(n ? n : 1));
}

static void udp(long n)
{
    struct sockaddr_in addr;
    int sink = local(SOCK_DGRAM, &addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    udp_loop(1, fd, &addr);
    long long start = now_ns();
    udp_loop(n, fd, &addr);
    printf("%.1f\n", (double)(now_ns() - start) / (double)(n ? n : 1));
    close(sink);
}

static long long udp_connect(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(9)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long start = now_ns();
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    long long took = now_ns() - start;
    close(fd);
    return took;
}

/* VmRSS, RssAnon and RssFile after one connect, in KiB. */
static void rss(void)
{
    char line[256];
    udp_connect();
    FILE *status = fopen("/proc/self/status", "r");
    long values[3] = {0, 0, 0};
    const char *keys[3] = {"VmRSS:", "RssAnon:", "RssFile:"};
    while (status && fgets(line, sizeof line, status))
        for (int k = 0; k < 3; k++)
            if (strncmp(line, keys[k], strlen(keys[k])) == 0)
                values[k] = strtol(line + strlen(keys[k]), NULL, 10);
    printf("%ld %ld %ld\n", values[0], values[1], values[2]);
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 1000;
    if (argc > 1 && strcmp(argv[1], "tcp") == 0)
        tcp(n);
    else if (argc > 1 && strcmp(argv[1], "udp") == 0)
        udp(n);
    else if (argc > 1 && strcmp(argv[1], "first") == 0) {
        long long first = udp_connect();
        long long second = udp_connect();
        printf("%lld %lld\n", first, second);
    } else if (argc > 1 && strcmp(argv[1], "rss") == 0)
        rss();
    else {
        fprintf(stderr, "usage: netloop tcp|udp N | first | rss\n");
        return 2;
    }
    return 0;
}
