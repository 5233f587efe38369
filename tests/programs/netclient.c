/*
 * netclient: the small C client of the hardening tests
 * (tests/tests/hardening_*.rs). Every mode talks to the lab's uplink
 * servers, which answer a line `NAME PEER_IP` (e.g. `vpn 198.18.2.2`).
 *
 *   netclient tcp HOST PORT         one connection; prints the answer, or
 *                                   `error ENAME` (connect's errno)
 *   netclient udp HOST PORT         one datagram with sendto on an
 *                                   unconnected socket; prints the answer
 *                                   or `error ENAME`
 *   netclient fds N HOST PORT       N connections (and N datagrams); prints
 *                                   `fds before=B first=F after=A failed=X`
 *                                   (open descriptors before any socket,
 *                                   after the first connection, after all)
 *   netclient threads T N HOST PORT GAP_US
 *                                   T threads x N connections, GAP_US
 *                                   microseconds apart; prints one line of
 *                                   counts per answering uplink and failures
 *   netclient forks T F HOST PORT   T threads connect in a loop while the
 *                                   main thread forks F children, each of
 *                                   which connects once and prints
 *                                   `child: ANSWER`
 *   netclient vfork PROG ARG...     vfork + execv PROG, waits; exits with
 *                                   its status
 *   netclient spawn PROG ARG...     posix_spawn PROG, waits; likewise
 *   netclient mixed N T HOST PORT   for valgrind: N connections and N
 *                                   datagrams (sendto and sendmsg) in the
 *                                   main thread and in T threads
 *   netclient tfo-mmsg HOST PORT    one TCP Fast Open connection made by
 *                                   sendmmsg(MSG_FASTOPEN); prints the
 *                                   answer or `error ENAME`
 *   netclient reuse-udp HOST PORT   a TCP socket closed by close_range,
 *                                   its number taken by a UDP socket made
 *                                   by a raw syscall (as libc makes its
 *                                   own), one datagram from it with sendto;
 *                                   prints the answer or `error ENAME`
 *   netclient whoami                prints `secure=S euid=E ruid=R`
 *   netclient resolve NAME          getaddrinfo(NAME) for TCP; prints each
 *                                   address on a line, or `error RC`
 *   netclient sigstorm N HOST PORT UDP_HOST UDP_PORT
 *                                   N connections to HOST:PORT in the main
 *                                   thread while a SIGALRM every ~40 us
 *                                   sends a datagram to UDP_HOST:UDP_PORT
 *                                   from its handler; prints
 *                                   `handler ok=X eagain=Y other=Z`
 *
 * Exits 0 when every exchange got an answer, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *host;
static int port;

static const char *errname(int e)
{
    const char *name = strerrorname_np(e);
    return name ? name : "E?";
}

static socklen_t target(struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        return sizeof *a4;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        return sizeof *a6;
    }
    fprintf(stderr, "netclient: bad address %s\n", host);
    exit(2);
}

static void timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Reads the server's answer line (without newline) into `out`, or
 * `error no answer`, and closes `fd`. Returns 0 on an answer. */
static int read_answer(int fd, char *out, size_t size)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, out + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == size - 1)
            break;
    }
    close(fd);
    out[got] = 0;
    while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == '\r'))
        out[--got] = 0;
    if (got == 0) {
        snprintf(out, size, "error no answer");
        return -1;
    }
    return 0;
}

/* A TCP socket of the target's family with the timeouts set, or -1 with
 * `error socket ENAME` in `out`. */
static int tcp_socket(const struct sockaddr_storage *ss, char *out, size_t size)
{
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(out, size, "error socket %s", errname(errno));
        return -1;
    }
    timeouts(fd);
    return fd;
}

/* One TCP exchange: the answer in `out`, or `error ENAME`. */
static int tcp_once(char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = target(&ss);
    int fd = tcp_socket(&ss, out, size);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        snprintf(out, size, "error %s", errname(errno));
        close(fd);
        return -1;
    }
    (void)!write(fd, "hello\n", 6);
    return read_answer(fd, out, size);
}

/* One TCP Fast Open connection whose SYN rides on sendmmsg's first
 * message, then the answer, as tcp_once reads it. */
static int tfo_mmsg_once(char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = target(&ss);
    int fd = tcp_socket(&ss, out, size);
    if (fd < 0)
        return -1;
    char hello[] = "hello\n";
    struct iovec iov = { .iov_base = hello, .iov_len = 6 };
    struct mmsghdr msg = { 0 };
    msg.msg_hdr.msg_name = &ss;
    msg.msg_hdr.msg_namelen = len;
    msg.msg_hdr.msg_iov = &iov;
    msg.msg_hdr.msg_iovlen = 1;
    if (sendmmsg(fd, &msg, 1, MSG_FASTOPEN) != 1) {
        snprintf(out, size, "error %s", errname(errno));
        close(fd);
        return -1;
    }
    return read_answer(fd, out, size);
}

/* One datagram, sent with sendto (or sendmsg) on an unconnected socket. */
/* One datagram to the target from `fd` (sendto, or sendmsg), then the
 * answer in `out`, or `error ENAME`; closes `fd`. */
static int datagram_once(int fd, char *out, size_t size, int use_sendmsg)
{
    struct sockaddr_storage ss;
    socklen_t len = target(&ss);
    timeouts(fd);
    ssize_t sent;
    if (use_sendmsg) {
        struct iovec iov = {.iov_base = "ping", .iov_len = 4};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = &ss;
        msg.msg_namelen = len;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        sent = sendmsg(fd, &msg, 0);
    } else {
        sent = sendto(fd, "ping", 4, 0, (struct sockaddr *)&ss, len);
    }
    if (sent < 0) {
        snprintf(out, size, "error %s", errname(errno));
        close(fd);
        return -1;
    }
    ssize_t n = recv(fd, out, size - 1, 0);
    int e = errno;
    close(fd);
    if (n <= 0) {
        snprintf(out, size, "error recv %s", n < 0 ? errname(e) : "empty");
        return -1;
    }
    out[n] = 0;
    return 0;
}

static int udp_once(char *out, size_t size, int use_sendmsg)
{
    struct sockaddr_storage ss;
    target(&ss);
    int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        snprintf(out, size, "error socket %s", errname(errno));
        return -1;
    }
    return datagram_once(fd, out, size, use_sendmsg);
}

/* udp_once on a descriptor number that socket() last gave a TCP socket,
 * closed by close_range and reused behind socket()'s back. */
static int reuse_udp_once(char *out, size_t size)
{
    struct sockaddr_storage ss;
    target(&ss);
    int tcp = socket(ss.ss_family, SOCK_STREAM, 0);
    if (tcp < 0 || close_range(tcp, tcp, 0) < 0) {
        snprintf(out, size, "error close_range %s", errname(errno));
        return -1;
    }
    int fd = (int)syscall(SYS_socket, ss.ss_family, SOCK_DGRAM, 0);
    if (fd != tcp) {
        snprintf(out, size, "error reused %d not %d", fd, tcp);
        return -1;
    }
    return datagram_once(fd, out, size, 0);
}

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (entry->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own descriptor */
}

/* ---- threads: tallies of answers by uplink name */

static int per_thread, gap_us;
static atomic_int tally_wan, tally_vpn, tally_alt, tally_other, tally_failed;
static atomic_int stop_flag;

static void tally(int rc, const char *answer)
{
    if (rc != 0) {
        if (atomic_fetch_add(&tally_failed, 1) < 5)
            fprintf(stderr, "netclient: %s\n", answer);
    } else if (!strncmp(answer, "wan ", 4)) {
        atomic_fetch_add(&tally_wan, 1);
    } else if (!strncmp(answer, "vpn ", 4)) {
        atomic_fetch_add(&tally_vpn, 1);
    } else if (!strncmp(answer, "alt ", 4)) {
        atomic_fetch_add(&tally_alt, 1);
    } else {
        atomic_fetch_add(&tally_other, 1);
    }
}

static void *connector(void *arg)
{
    (void)arg;
    char answer[256];
    for (int i = 0; i < per_thread; i++) {
        tally(tcp_once(answer, sizeof answer), answer);
        if (gap_us)
            usleep(gap_us);
    }
    return NULL;
}

static void print_tally(void)
{
    printf("wan=%d vpn=%d alt=%d other=%d failed=%d\n", tally_wan, tally_vpn, tally_alt,
           tally_other, tally_failed);
}

static int start_threads(pthread_t *threads, int n, void *(*body)(void *))
{
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&threads[i], NULL, body, NULL);
        if (e) {
            fprintf(stderr, "netclient: pthread_create: %s\n", errname(e));
            return -1;
        }
    }
    return 0;
}

static void *busy_connector(void *arg)
{
    (void)arg;
    char answer[256];
    while (!atomic_load(&stop_flag))
        tally(tcp_once(answer, sizeof answer), answer);
    return NULL;
}

static void *mixed_worker(void *arg)
{
    char answer[256];
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        tally(tcp_once(answer, sizeof answer), answer);
        tally(udp_once(answer, sizeof answer, i % 2), answer);
    }
    return NULL;
}

/* ---- sigstorm: sends from a signal handler */

static int storm_fd;
static struct sockaddr_storage storm_to;
static socklen_t storm_len;
static volatile sig_atomic_t storm_ok, storm_eagain, storm_other;

static void storm_handler(int sig)
{
    (void)sig;
    int saved = errno;
    if (sendto(storm_fd, "sig", 3, 0, (struct sockaddr *)&storm_to, storm_len) == 3)
        storm_ok++;
    else if (errno == EAGAIN)
        storm_eagain++;
    else
        storm_other++;
    errno = saved;
}

static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 127;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "netclient: child killed by signal %d\n", WTERMSIG(status));
    return 128 + WTERMSIG(status);
}

static int usage(void)
{
    fprintf(stderr, "netclient: bad usage (see the comment in tests/programs/netclient.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    char answer[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return usage();
    const char *mode = argv[1];

    if (!strcmp(mode, "whoami")) {
        printf("secure=%lu euid=%d ruid=%d\n", getauxval(AT_SECURE), (int)geteuid(), (int)getuid());
        return 0;
    }
    if (!strcmp(mode, "resolve")) {
        if (argc != 3)
            return usage();
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list;
        int rc = getaddrinfo(argv[2], NULL, &hints, &list);
        if (rc) {
            printf("error %d\n", rc);
            return 1;
        }
        for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
            char text[INET6_ADDRSTRLEN];
            const void *addr = ai->ai_family == AF_INET
                                   ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                   : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            printf("%s\n", inet_ntop(ai->ai_family, addr, text, sizeof text));
        }
        freeaddrinfo(list);
        return 0;
    }
    if (!strcmp(mode, "vfork") || !strcmp(mode, "spawn")) {
        if (argc < 3)
            return usage();
        pid_t pid;
        if (!strcmp(mode, "vfork")) {
            pid = vfork();
            if (pid == 0) {
                execv(argv[2], argv + 2);
                _exit(127);
            }
        } else {
            int e = posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ);
            if (e) {
                fprintf(stderr, "netclient: posix_spawn: %s\n", errname(e));
                return 1;
            }
        }
        if (pid < 0)
            return 1;
        return wait_child(pid);
    }

    if (!strcmp(mode, "tcp") || !strcmp(mode, "udp")) {
        if (argc != 4)
            return usage();
        host = argv[2];
        port = atoi(argv[3]);
        int rc = mode[0] == 't' ? tcp_once(answer, sizeof answer) : udp_once(answer, sizeof answer, 0);
        printf("%s\n", answer);
        return rc ? 1 : 0;
    }

    if (!strcmp(mode, "tfo-mmsg") || !strcmp(mode, "reuse-udp")) {
        if (argc != 4)
            return usage();
        host = argv[2];
        port = atoi(argv[3]);
        int rc = mode[0] == 't' ? tfo_mmsg_once(answer, sizeof answer)
                                : reuse_udp_once(answer, sizeof answer);
        printf("%s\n", answer);
        return rc ? 1 : 0;
    }

    if (!strcmp(mode, "fds")) {
        if (argc != 5)
            return usage();
        int n = atoi(argv[2]);
        host = argv[3];
        port = atoi(argv[4]);
        int before = count_fds();
        tally(tcp_once(answer, sizeof answer), answer);
        int first = count_fds();
        for (int i = 1; i < n; i++) {
            tally(tcp_once(answer, sizeof answer), answer);
            tally(udp_once(answer, sizeof answer, i % 2), answer);
        }
        int after = count_fds();
        printf("fds before=%d first=%d after=%d failed=%d\n", before, first, after, tally_failed);
        print_tally();
        return tally_failed ? 1 : 0;
    }

    if (!strcmp(mode, "threads")) {
        if (argc != 7)
            return usage();
        int n = atoi(argv[2]);
        per_thread = atoi(argv[3]);
        host = argv[4];
        port = atoi(argv[5]);
        gap_us = atoi(argv[6]);
        pthread_t threads[256];
        if (n < 1 || n > 256 || start_threads(threads, n, connector))
            return usage();
        for (int i = 0; i < n; i++)
            pthread_join(threads[i], NULL);
        print_tally();
        return tally_failed || tally_other ? 1 : 0;
    }

    if (!strcmp(mode, "forks")) {
        if (argc != 6)
            return usage();
        int n = atoi(argv[2]);
        int forks = atoi(argv[3]);
        host = argv[4];
        port = atoi(argv[5]);
        pthread_t threads[64];
        if (n < 1 || n > 64 || start_threads(threads, n, busy_connector))
            return usage();
        int bad = 0;
        for (int i = 0; i < forks; i++) {
            usleep(20000);
            pid_t pid = fork();
            if (pid == 0) {
                /* Only this thread exists in the child. */
                int rc = tcp_once(answer, sizeof answer);
                char line[300];
                int len = snprintf(line, sizeof line, "child: %s\n", answer);
                (void)!write(1, line, (size_t)len);
                _exit(rc ? 1 : 0);
            }
            if (pid < 0 || wait_child(pid) != 0)
                bad++;
        }
        atomic_store(&stop_flag, 1);
        for (int i = 0; i < n; i++)
            pthread_join(threads[i], NULL);
        printf("forks=%d bad=%d\n", forks, bad);
        print_tally();
        return bad || tally_failed ? 1 : 0;
    }

    if (!strcmp(mode, "sigstorm")) {
        if (argc != 7)
            return usage();
        int n = atoi(argv[2]);
        host = argv[5];
        port = atoi(argv[6]);
        storm_len = target(&storm_to);
        storm_fd = socket(storm_to.ss_family, SOCK_DGRAM, 0);
        host = argv[3];
        port = atoi(argv[4]);
        struct sockaddr_storage to;
        socklen_t len = target(&to);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = storm_handler;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval timer = {.it_interval = {.tv_usec = 40}, .it_value = {.tv_usec = 40}};
        setitimer(ITIMER_REAL, &timer, NULL);
        for (int i = 0; i < n; i++) {
            int fd = socket(to.ss_family, SOCK_STREAM, 0);
            connect(fd, (struct sockaddr *)&to, len);
            close(fd);
        }
        struct itimerval off = {0};
        setitimer(ITIMER_REAL, &off, NULL);
        printf("handler ok=%d eagain=%d other=%d\n", (int)storm_ok, (int)storm_eagain,
               (int)storm_other);
        return storm_other ? 1 : 0;
    }

    if (!strcmp(mode, "mixed")) {
        if (argc != 6)
            return usage();
        int n = atoi(argv[2]);
        int t = atoi(argv[3]);
        host = argv[4];
        port = atoi(argv[5]);
        pthread_t threads[64];
        if (t < 0 || t > 64)
            return usage();
        for (int i = 0; i < t; i++)
            pthread_create(&threads[i], NULL, mixed_worker, &n);
        mixed_worker(&n);
        for (int i = 0; i < t; i++)
            pthread_join(threads[i], NULL);
        print_tally();
        return tally_failed ? 1 : 0;
    }
    return usage();
}
