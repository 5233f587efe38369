/*
 * reenter.so: preloaded after libbindto.so, it wraps dlopen(), which the
 * front calls to load the engine, to act in the middle of that load
 * (tests/tests/front.rs). $REENTER says what it does, once, when the
 * engine is being opened, then opens it:
 *
 *   call   the loading thread calls the front again: socket, connect (to
 *          127.0.0.1:9), close, getaddrinfo; one line on stderr,
 *          `reentered socket=ok|ERRNO connect=RC ERRNO close=RC gai=...`
 *   fork   fork; the child (whose only thread was the loader in the
 *          parent) connects to 127.0.0.1:9 and prints `child connect
 *          ERRNO`; the parent prints `child status N` after it exits (a
 *          child that waited for the parent's load would be killed by
 *          its alarm after 10 s).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "other";
    }
}

static int connect_once(int *rc) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return -1;
    errno = 0;
    *rc = connect(s, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(s);
    return e;
}

void *dlopen(const char *file, int mode) {
    static int done;
    void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    const char *what = getenv("REENTER");
    if (!done && what && file && strstr(file, "libbindto_engine.so")) {
        done = 1;
        if (strcmp(what, "call") == 0) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            int socket_errno = errno;
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_port = htons(9);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            errno = 0;
            int rc = connect(s, (struct sockaddr *)&a, sizeof a);
            int connect_errno = errno;
            int closed = close(s);
            struct addrinfo *res = NULL;
            int gai = getaddrinfo("localhost", "9", NULL, &res);
            fprintf(stderr, "reentered socket=%s connect=%d %s close=%d gai=%s\n",
                    s >= 0 ? "ok" : name(socket_errno), rc, name(connect_errno), closed,
                    gai == EAI_AGAIN ? "EAI_AGAIN" : gai_strerror(gai));
        } else if (strcmp(what, "fork") == 0) {
            pid_t pid = fork();
            if (pid == 0) {
                alarm(10);
                int rc = 0;
                int e = connect_once(&rc);
                fprintf(stderr, "child connect %s\n", name(e));
                _exit(0);
            }
            int status = -1;
            waitpid(pid, &status, 0);
            fprintf(stderr, "child status %d\n", status);
        }
    }
    return real(file, mode);
}
