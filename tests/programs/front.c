/*
 * front: what the front (libbindto.so) does before and without the
 * engine (tests/tests/front.rs).
 *
 *   front maps [connect|forget]
 *                          optionally one TCP connect to 127.0.0.1:9, or
 *                          only calls that forget descriptors (close, dup2,
 *                          dup3, close_range, closefrom), then
 *                          `front=yes|no engine=yes|no`: which of
 *                          libbindto.so and libbindto_engine.so
 *                          /proc/self/maps shows
 *   front refused          one line per call, `label result`, for a front
 *                          whose engine cannot be loaded
 *   front race N           N threads released together each connect once
 *                          to 127.0.0.1:9; prints `errno-name count` lines
 *
 * Only ever connects to 127.0.0.1 (port 9, where nothing listens, or a
 * Unix socket path that does not exist).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EAGAIN: return "EAGAIN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOSYS: return "ENOSYS";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "%d", e);
        return buf;
    }
    }
}

static struct sockaddr_in loopback(void) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int connect_once(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return errno;
    struct sockaddr_in a = loopback();
    errno = 0;
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    int e = rc == 0 ? 0 : errno;
    close(s);
    return e;
}

static int maps(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "connect") == 0)
        connect_once();
    if (argc > 2 && strcmp(argv[2], "forget") == 0) {
        close(-1);
        dup2(1, 50);
        dup3(1, 51, 0);
        close(50);
        close_range(51, 51, 0);
        closefrom(52);
    }
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 2;
    char line[4096];
    int front = 0, engine = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "/libbindto.so"))
            front = 1;
        if (strstr(line, "/libbindto_engine.so"))
            engine = 1;
    }
    fclose(f);
    printf("front=%s engine=%s\n", front ? "yes" : "no", engine ? "yes" : "no");
    return 0;
}

static int refused(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket %s\n", s >= 0 ? "ok" : name(errno));
    struct sockaddr_in a = loopback();
    errno = 0;
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect %d %s\n", rc, name(errno));
    struct sockaddr_in any = loopback();
    any.sin_port = 0;
    errno = 0;
    rc = bind(s, (struct sockaddr *)&any, sizeof any);
    printf("bind %d %s\n", rc, name(errno));
    printf("close %d\n", close(s));

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    errno = 0;
    ssize_t n = sendto(u, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
    printf("sendto %zd %s\n", n, name(errno));
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    struct msghdr msg = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1};
    errno = 0;
    n = sendmsg(u, &msg, 0);
    printf("sendmsg %zd %s\n", n, name(errno));
    struct mmsghdr mm = {.msg_hdr = msg};
    errno = 0;
    rc = sendmmsg(u, &mm, 1, 0);
    printf("sendmmsg %d %s\n", rc, name(errno));
    int d = dup2(u, 100);
    printf("dup2 %s\n", d == 100 ? "ok" : name(errno));
    printf("close %d %d\n", close(u), close(100));

    /* A Unix socket is not the engine's to decide: libc's answer. */
    int x = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un path = {.sun_family = AF_UNIX};
    strcpy(path.sun_path, "/nonexistent/bindto-front-test");
    errno = 0;
    rc = connect(x, (struct sockaddr *)&path, sizeof path);
    printf("connect-unix %d %s\n", rc, name(errno));
    close(x);

    struct addrinfo *res = NULL;
    errno = 0;
    rc = getaddrinfo("localhost", "9", NULL, &res);
    printf("getaddrinfo %s %s\n", rc == EAI_FAIL ? "EAI_FAIL" : gai_strerror(rc), name(errno));
    /* Each request fails, and the call, as when glibc cannot start them. */
    struct gaicb request = {.ar_name = "localhost"};
    struct gaicb *requests[1] = {&request};
    errno = 0;
    rc = getaddrinfo_a(GAI_WAIT, requests, 1, NULL);
    printf("getaddrinfo_a %d %s %d\n", rc, name(errno), gai_error(&request));
    char host[64];
    errno = 0;
    rc = getnameinfo((struct sockaddr *)&a, sizeof a, host, sizeof host, NULL, 0, 0);
    printf("getnameinfo %s\n", rc == EAI_FAIL ? "EAI_FAIL" : gai_strerror(rc));
    h_errno = 0;
    struct hostent *h = gethostbyname("localhost");
    printf("gethostbyname %s %d\n", h ? "found" : "null", h_errno);
    struct hostent he, *result = &he;
    char buf[1024];
    int herr = 0;
    rc = gethostbyname_r("localhost", &he, buf, sizeof buf, &result, &herr);
    printf("gethostbyname_r %s %s %d\n", name(rc), result ? "found" : "null", herr);
    unsigned char answer[512];
    h_errno = 0;
    rc = res_query("localhost", 1, 1, answer, sizeof answer);
    printf("res_query %d %d\n", rc, h_errno);
    return 0;
}

static pthread_barrier_t barrier;
static int results[64];

static void *racer(void *arg) {
    int i = (int)(long)arg;
    pthread_barrier_wait(&barrier);
    results[i] = connect_once();
    return NULL;
}

static int race(int n) {
    if (n < 1 || n > 64)
        return 2;
    pthread_t threads[64];
    pthread_barrier_init(&barrier, NULL, n);
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, racer, (void *)(long)i);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    int eperm = 0, other = 0;
    for (int i = 0; i < n; i++) {
        if (results[i] == EPERM)
            eperm++;
        else {
            other++;
            printf("other %s\n", name(results[i]));
        }
    }
    printf("EPERM %d\nother %d\n", eperm, other);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "maps") == 0)
        return maps(argc, argv);
    if (argc > 1 && strcmp(argv[1], "refused") == 0)
        return refused();
    if (argc > 2 && strcmp(argv[1], "race") == 0)
        return race(atoi(argv[2]));
    fprintf(stderr, "usage: front maps [connect] | refused | race N\n");
    return 2;
}
