/*
 * cancel: threads blocked in the shim's hooks, cancelled with
 * pthread_cancel and joined (tests/tests/side_doors_signals.rs).
 *
 *   cancel BLACKHOLE NAME TARGET
 *
 * One thread connects to BLACKHOLE:80 (whose SYNs are dropped), another
 * looks NAME up (a name whose server never answers); both are cancelled
 * once they block, and joined. Prints `connect cancelled=1 ms=N` and
 * `getaddrinfo cancelled=1 ms=N` (N: from the cancel to the end of the
 * join), then connects to TARGET:80 from the main thread: `after
 * connect=ok` or `after connect=<errno>`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int dial(const char *ip) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, ip, &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return errno;
    int e = connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(s);
    return e;
}

static void *connecting(void *ip) {
    dial(ip);
    return NULL;
}

static void *looking_up(void *name) {
    struct addrinfo *res = NULL;
    if (getaddrinfo(name, "80", NULL, &res) == 0)
        freeaddrinfo(res);
    return NULL;
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void cancel(const char *what, pthread_t thread) {
    long start = now_ms();
    pthread_cancel(thread);
    void *ret = NULL;
    pthread_join(thread, &ret);
    printf("%s cancelled=%d ms=%ld\n", what, ret == PTHREAD_CANCELED, now_ms() - start);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    pthread_t c, g;
    pthread_create(&c, NULL, connecting, argv[1]);
    pthread_create(&g, NULL, looking_up, argv[2]);
    usleep(500 * 1000);
    cancel("connect", c);
    cancel("getaddrinfo", g);
    int e = dial(argv[3]);
    printf("after connect=%s\n", e == 0 ? "ok" : strerror(e));
    return 0;
}
