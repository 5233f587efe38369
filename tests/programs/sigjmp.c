/*
 * sigjmp: name lookups interrupted by a signal (tests/tests/side_doors_signals.rs).
 *
 *   sigjmp SILENT NAME TARGET
 *
 * Every lookup goes through one function (`timed_lookup`), as in a program
 * that wraps getaddrinfo in a timeout.
 * 1. The classic timeout: sigsetjmp, a 300 ms timer whose handler
 *    siglongjmps back, and a lookup of SILENT (never answered), abandoned
 *    mid-way. Prints `interrupted`.
 * 2. A lookup of NAME: `lookup NAME=<first address>` or `lookup
 *    NAME=<EAI_AGAIN|EAI_SYSTEM|gai_strerror>`.
 * 3. A connect to TARGET:80: `connect=ok` or `connect=<strerror>`.
 * 4. A signal handler that looks NAME up while its thread waits in a lookup
 *    of SILENT, then siglongjmps out: `interrupted`, then `handler
 *    lookup=<EAI_AGAIN|EAI_SYSTEM|resolved ADDRESS|gai_strerror>`.
 * 5. 2 and 3 again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static sigjmp_buf env;
static const char *name;
static char handler_result[128];

/* The first address of `host`, or why not, in `out`. */
static int lookup(const char *host, char *out, size_t len) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, "80", &hints, &res);
    if (rc == 0) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, out, len);
        freeaddrinfo(res);
    } else if (rc == EAI_AGAIN) {
        snprintf(out, len, "EAI_AGAIN");
    } else if (rc == EAI_SYSTEM) {
        snprintf(out, len, "EAI_SYSTEM");
    } else {
        snprintf(out, len, "%s", gai_strerror(rc));
    }
    return rc;
}

static void jump(int sig) {
    (void)sig;
    siglongjmp(env, 1);
}

static void look_then_jump(int sig) {
    (void)sig;
    char out[64];
    if (lookup(name, out, sizeof out) == 0)
        snprintf(handler_result, sizeof handler_result, "resolved %s", out);
    else
        snprintf(handler_result, sizeof handler_result, "%s", out);
    siglongjmp(env, 1);
}

static void arm(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_usec = 300 * 1000;
    setitimer(ITIMER_REAL, &t, NULL);
}

/*
 * Every lookup goes through here, as in a program that wraps getaddrinfo
 * in an alarm() timeout: with `handler` armed, a lookup the handler
 * leaves by siglongjmp prints `interrupted`.
 */
static void timed_lookup(const char *host, void (*handler)(int)) {
    char out[64];
    if (sigsetjmp(env, 1) == 0) {
        if (handler)
            arm(handler);
        lookup(host, out, sizeof out);
        printf("lookup %s=%s\n", host, out);
    } else {
        printf("interrupted\n");
    }
    fflush(stdout);
}

static void dial(const char *target) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, target, &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect=%s\n", rc == 0 ? "ok" : strerror(errno));
    close(s);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    const char *silent = argv[1];
    name = argv[2];
    timed_lookup(silent, jump);
    timed_lookup(name, NULL);
    dial(argv[3]);
    timed_lookup(silent, look_then_jump);
    printf("handler lookup=%s\n", handler_result);
    timed_lookup(name, NULL);
    dial(argv[3]);
    return 0;
}
