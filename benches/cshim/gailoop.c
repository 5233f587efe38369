/* The client of the resolver benchmark (benches/dns.sh), with and without
 * the preload:
 *
 *     gailoop N NAME FAMILY    one getaddrinfo(NAME) with ai_family FAMILY
 *                              (4: AF_INET, 0: AF_UNSPEC) and freeaddrinfo,
 *                              then N more, timed; prints nanoseconds per
 *                              lookup
 *
 * The first lookup pays for any set-up (the preload's table, libc's NSS
 * modules), so runs of N and 2N differ by exactly N lookups.
 */
#define _GNU_SOURCE
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void lookup(const char *name, const struct addrinfo *hints)
{
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, NULL, hints, &res);
    if (rc != 0) {
        fprintf(stderr, "gailoop: %s: %s\n", name, gai_strerror(rc));
        exit(1);
    }
    freeaddrinfo(res);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: gailoop N NAME FAMILY(4|0)\n");
        return 2;
    }
    long n = atol(argv[1]);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = atoi(argv[3]) == 4 ? AF_INET : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    lookup(argv[2], &hints);
    long long start = now_ns();
    for (long i = 0; i < n; i++)
        lookup(argv[2], &hints);
    long long elapsed = now_ns() - start;
    printf("%lld\n", n > 0 ? elapsed / n : 0);
    return 0;
}
