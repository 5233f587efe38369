/*
 * logfd: the shim's BINDTO_LOG_FILE descriptor after the program closed it
 * and reused its number (tests/tests/side_doors_signals.rs).
 *
 *   logfd TARGET LOGFILE closefrom VICTIM   connect to TARGET:80 (the shim
 *       opens its log), closefrom(3), open VICTIM (a file of the program's,
 *       moved to the log's old number if it did not take it), connect twice
 *       more, print `victim fd=N log_fd=M bytes=B`: B bytes of the shim's
 *       landed in the program's file.
 *   logfd TARGET LOGFILE rawclose           the same, but the log's
 *       descriptor is closed by a raw close syscall, which no hook sees,
 *       and a socketpair end takes its number; prints `pair fd=N log_fd=M
 *       leaked=B`: B bytes arrived at the pair's other end.
 *
 * Then `connects ok=K`, the connects that succeeded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int connect_once(const char *target) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, target, &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 0;
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* The descriptor open on `path`, or -1. */
static int find_fd(const char *path) {
    char real[PATH_MAX];
    if (!realpath(path, real))
        return -1;
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        if (strcmp(target, real) == 0)
            return fd;
    }
    return -1;
}

/* `fd` moved to `number` (free now) if it did not land there. */
static int take(int fd, int number) {
    if (fd == number || number < 0)
        return fd;
    int moved = dup2(fd, number);
    close(fd);
    return moved;
}

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    const char *target = argv[1];
    int ok = connect_once(target);
    int log_fd = find_fd(argv[2]);
    if (strcmp(argv[3], "closefrom") == 0 && argc == 5) {
        closefrom(3);
        int victim = take(open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), log_fd);
        ok += connect_once(target);
        ok += connect_once(target);
        struct stat st;
        fstat(victim, &st);
        printf("victim fd=%d log_fd=%d bytes=%lld\n", victim, log_fd, (long long)st.st_size);
    } else if (strcmp(argv[3], "rawclose") == 0) {
        syscall(SYS_close, log_fd);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            return 1;
        sv[0] = take(sv[0], log_fd);
        ok += connect_once(target);
        ok += connect_once(target);
        char buf[4096];
        ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        printf("pair fd=%d log_fd=%d leaked=%zd\n", sv[0], log_fd, n < 0 ? (ssize_t)0 : n);
    } else {
        return 2;
    }
    printf("connects ok=%d\n", ok);
    return 0;
}
