/*
 * gai_async: glibc's asynchronous lookups, getaddrinfo_a
 * (tests/tests/side_doors_plugins.rs). Each request asks for NAME's IPv4
 * TCP addresses; its line is `NAME ERROR ADDRESS...` (gai_error's value
 * and the addresses found). Exits 0 when every step went as glibc
 * documents, 1 otherwise, 2 on bad usage.
 *
 *   gai_async wait NAME...   one GAI_WAIT call for all the names:
 *                            `wait RC`, then a line per request
 *   gai_async nowait NAME    GAI_NOWAIT without notification, then
 *                            gai_suspend until done: `suspend RC` (0),
 *                            the request's line, then on the finished
 *                            request `cancel RC` and `suspend RC` (both
 *                            EAI_ALLDONE, -103)
 *   gai_async signal NAME    GAI_NOWAIT with SIGEV_SIGNAL (SIGUSR1, value
 *                            42), taken with sigtimedwait: `signal CODE
 *                            VALUE PID` (SI_ASYNCNL is -60; PID `self`
 *                            when it is the process's), the line
 *   gai_async thread NAME    GAI_NOWAIT with SIGEV_THREAD (value 42):
 *                            `thread VALUE`, the line
 *   gai_async slow NAME      one GAI_NOWAIT call of 21 requests for a
 *                            lookup that takes a while, one more than
 *                            glibc runs at once: while the first runs,
 *                            `suspend RC` for a 100 ms timeout (EAI_AGAIN,
 *                            -3), `error RC` (EAI_INPROGRESS, -100),
 *                            `cancel RC` (EAI_NOTCANCELED, -102); for the
 *                            last, waiting, `cancel RC` (EAI_CANCELED,
 *                            -101); then gai_suspend until the first is
 *                            done, `suspend RC`, and its line
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};

static struct gaicb *request(const char *name)
{
    struct gaicb *req = calloc(1, sizeof *req);
    req->ar_name = name;
    req->ar_request = &hints;
    return req;
}

static void show(struct gaicb *req)
{
    printf("%s %d", req->ar_name, gai_error(req));
    for (struct addrinfo *ai = req->ar_result; ai; ai = ai->ai_next) {
        char text[INET_ADDRSTRLEN];
        struct sockaddr_in *a = (struct sockaddr_in *)ai->ai_addr;
        printf(" %s", inet_ntop(AF_INET, &a->sin_addr, text, sizeof text));
    }
    printf("\n");
    if (req->ar_result)
        freeaddrinfo(req->ar_result);
}

static const struct timespec ten = {.tv_sec = 10};

static sem_t notified;
static int notified_value;

static void on_done(union sigval value)
{
    notified_value = value.sival_int;
    sem_post(&notified);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 2 ? argv[1] : "";
    if (!strcmp(mode, "wait")) {
        int n = argc - 2;
        struct gaicb *list[n];
        for (int i = 0; i < n; i++)
            list[i] = request(argv[i + 2]);
        printf("wait %d\n", getaddrinfo_a(GAI_WAIT, list, n, NULL));
        for (int i = 0; i < n; i++)
            show(list[i]);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: see gai_async.c\n");
        return 2;
    }
    struct gaicb *req = request(argv[2]);
    struct gaicb *list[1] = {req};
    if (!strcmp(mode, "slow")) {
        struct gaicb *all[21] = {req};
        for (int i = 1; i < 21; i++)
            all[i] = request(argv[2]);
        if (getaddrinfo_a(GAI_NOWAIT, all, 21, NULL) != 0)
            return 1;
        const struct timespec short_wait = {.tv_nsec = 100 * 1000 * 1000};
        printf("suspend %d\n", gai_suspend((const struct gaicb *const *)list, 1, &short_wait));
        printf("error %d\n", gai_error(req));
        printf("cancel %d\n", gai_cancel(req));
        printf("cancel %d\n", gai_cancel(all[20]));
        int rc = 0;
        while (rc == 0 && gai_error(req) == EAI_INPROGRESS)
            rc = gai_suspend((const struct gaicb *const *)list, 1, &ten);
        printf("suspend %d\n", rc);
        show(req);
        return rc != 0;
    }
    if (!strcmp(mode, "nowait")) {
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0)
            return 1;
        int rc = 0;
        while (rc == 0 && gai_error(req) == EAI_INPROGRESS)
            rc = gai_suspend((const struct gaicb *const *)list, 1, &ten);
        printf("suspend %d\n", rc);
        show(req);
        printf("cancel %d\n", gai_cancel(req));
        printf("suspend %d\n", gai_suspend((const struct gaicb *const *)list, 1, &ten));
        return rc != 0;
    }
    if (!strcmp(mode, "signal")) {
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
        sev.sigev_value.sival_int = 42;
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev) != 0)
            return 1;
        siginfo_t info;
        if (sigtimedwait(&usr1, &info, &ten) != SIGUSR1) {
            printf("no signal\n");
            return 1;
        }
        printf("signal %d %d %s\n", info.si_code, info.si_value.sival_int,
               info.si_pid == getpid() ? "self" : "other");
        show(req);
        return 0;
    }
    if (!strcmp(mode, "thread")) {
        sem_init(&notified, 0, 0);
        struct sigevent sev = {.sigev_notify = SIGEV_THREAD};
        sev.sigev_notify_function = on_done;
        sev.sigev_value.sival_int = 42;
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev) != 0)
            return 1;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        if (sem_timedwait(&notified, &deadline) != 0) {
            printf("no notification\n");
            return 1;
        }
        printf("thread %d\n", notified_value);
        show(req);
        return 0;
    }
    fprintf(stderr, "usage: see gai_async.c\n");
    return 2;
}
