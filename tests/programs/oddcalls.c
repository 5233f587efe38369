/*
 * oddcalls: a fixed sequence of odd and ordinary socket calls, one output
 * line per call: `label rc=<return value> errno=<name>`, with errno set to
 * 12345 before every call, so a call that succeeds must print
 * `errno=12345` (untouched). Nothing in a line depends on descriptor
 * numbers or ports, so runs with and without the shim compare line by line
 * (tests/tests/hardening_libc.rs).
 *
 *   oddcalls [BLACKHOLE_V4]
 *
 * BLACKHOLE_V4, if given, is an address whose SYNs are silently dropped:
 * a blocking connect to it is interrupted by SIGALRM (handler installed
 * without SA_RESTART) and must fail with EINTR; the handler itself
 * connects a UDP socket, to show that a hook called from a signal handler
 * during another hook's real call still works.
 *
 * Needs 127.0.0.1 and ::1 (lo up). Exits 0 unless its own set-up fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAGIC 12345

static void report(const char *label, long rc, int err, const char *extra)
{
    const char *name = strerrorname_np(err);
    if (name)
        printf("%s rc=%ld errno=%s%s%s\n", label, rc, name, extra ? " " : "", extra ? extra : "");
    else
        printf("%s rc=%ld errno=%d%s%s\n", label, rc, err, extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

/* Runs EXPR with errno = MAGIC and reports its return value and errno.
 * A descriptor is printed as `fd` (numbers differ between runs). */
#define CALL(label, expr)                                   \
    do {                                                    \
        errno = MAGIC;                                      \
        long rc_ = (long)(expr);                            \
        int err_ = errno;                                   \
        report(label, rc_, err_, NULL);                     \
    } while (0)

#define FD_CALL(label, var, expr)                           \
    do {                                                    \
        errno = MAGIC;                                      \
        var = (expr);                                       \
        int err_ = errno;                                   \
        report(label, var >= 0 ? 0 : var, err_, var >= 0 ? "fd" : NULL); \
    } while (0)

static void die(const char *what)
{
    printf("SETUP FAILED %s: %s\n", what, strerrorname_np(errno));
    exit(2);
}

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
        die("inet_pton");
    return a;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    if (inet_pton(AF_INET6, ip, &a.sin6_addr) != 1)
        die("inet_pton6");
    return a;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        die("getsockname");
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* The local address of fd, without the port. */
static const char *local_ip(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return "local=?";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    snprintf(buf, size, "local=%s", ip);
    return buf;
}

static int tcp4(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket tcp4");
    return fd;
}

static int tcp6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket tcp6");
    return fd;
}

static int udp4(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket udp4");
    return fd;
}

static int udp6(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket udp6");
    return fd;
}

static struct sockaddr_in receiver_addr;
static volatile sig_atomic_t handler_rc = 99, handler_errno = 0, handler_ran = 0;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    errno = MAGIC;
    handler_rc = connect(fd, (struct sockaddr *)&receiver_addr, sizeof receiver_addr);
    handler_errno = errno;
    close(fd);
    handler_ran = 1;
    errno = saved;
}

int main(int argc, char **argv)
{
    const char *blackhole = argc > 1 ? argv[1] : NULL;
    const char msg[] = "odd\n";
    char buf[128];
    int fd, fd2;

    /* Set-up, reported too: the first socket() resolves the real
     * functions, the first bind() loads the profile. */
    int listener;
    FD_CALL("first_socket", listener, socket(AF_INET, SOCK_STREAM, 0));
    if (listener < 0)
        die("listener");
    struct sockaddr_in any_lo = v4("127.0.0.1", 0);
    CALL("first_bind_loopback", bind(listener, (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("listen", listen(listener, 64));
    struct sockaddr_in server = v4("127.0.0.1", port_of(listener));

    int listener6 = tcp6();
    struct sockaddr_in6 any_lo6 = v6("::1", 0);
    CALL("bind_loopback6", bind(listener6, (struct sockaddr *)&any_lo6, sizeof any_lo6));
    CALL("listen6", listen(listener6, 64));
    struct sockaddr_in6 server6 = v6("::1", port_of(listener6));

    int receiver = udp4();
    CALL("bind_receiver", bind(receiver, (struct sockaddr *)&any_lo, sizeof any_lo));
    receiver_addr = v4("127.0.0.1", port_of(receiver));

    /* A port nobody listens on: bound, read back, closed. */
    fd = tcp4();
    if (bind(fd, (struct sockaddr *)&any_lo, sizeof any_lo) != 0)
        die("bind closed port");
    struct sockaddr_in closed_port = v4("127.0.0.1", port_of(fd));
    close(fd);

    struct sockaddr_un unix_addr;
    memset(&unix_addr, 0, sizeof unix_addr);
    unix_addr.sun_family = AF_UNIX;
    strcpy(unix_addr.sun_path, "/nonexistent/bindto-oddcalls.sock");

    struct sockaddr_in unknown;
    memset(&unknown, 0, sizeof unknown);
    unknown.sin_family = 255;

    struct sockaddr_in unspec;
    memset(&unspec, 0, sizeof unspec);
    unspec.sin_family = AF_UNSPEC;

    int pipefd[2];
    if (pipe(pipefd) != 0)
        die("pipe");

    /* ---- socket, close, dup2, dup3: hooked to track descriptors */
    CALL("socket_bad_type", socket(AF_INET, 999, 0));
    CALL("socket_bad_family", socket(12345, SOCK_STREAM, 0));
    CALL("socket_raw_unpriv_or_not", (fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)) >= 0 ? 0 : -1);
    if (fd >= 0)
        close(fd);
    fd = tcp4();
    CALL("dup2_ok", dup2(fd, 200) == 200 ? 0 : -1);
    CALL("dup3_same", dup3(fd, fd, 0));
    CALL("dup2_badfd", dup2(-1, 201));
    CALL("dup3_badflags", dup3(fd, 202, 12345));
    CALL("close_dup", close(200));
    CALL("close_ok", close(fd));
    CALL("close_again", close(fd));
    CALL("close_minus1", close(-1));

    /* ---- connect */
    fd = tcp4();
    CALL("connect_null_len16", connect(fd, NULL, 16));
    CALL("connect_null_len0", connect(fd, NULL, 0));
    CALL("connect_len1", connect(fd, (struct sockaddr *)&server, 1));
    CALL("connect_short_in", connect(fd, (struct sockaddr *)&server, 8));
    CALL("connect_len_huge", connect(fd, (struct sockaddr *)&server, 4096));
    CALL("connect_unknown_family", connect(fd, (struct sockaddr *)&unknown, sizeof unknown));
    CALL("connect_unix_on_tcp", connect(fd, (struct sockaddr *)&unix_addr, sizeof unix_addr));
    CALL("connect_v6_on_v4", connect(fd, (struct sockaddr *)&server6, sizeof server6));
    CALL("connect_unspec_unconnected", connect(fd, (struct sockaddr *)&unspec, sizeof unspec));
    close(fd);

    fd = tcp6();
    CALL("connect6_short", connect(fd, (struct sockaddr *)&server6, 20));
    CALL("connect_v4_on_v6", connect(fd, (struct sockaddr *)&server, sizeof server));
    CALL("connect6_len24_ok", connect(fd, (struct sockaddr *)&server6, 24));
    close(fd);

    fd = tcp6();
    struct sockaddr_in6 mapped = v6("::ffff:127.0.0.1", port_of(listener));
    CALL("connect6_mapped_ok", connect(fd, (struct sockaddr *)&mapped, sizeof mapped));
    close(fd);

    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CALL("connect_unix_path", connect(fd, (struct sockaddr *)&unix_addr, sizeof unix_addr));
    close(fd);

    CALL("connect_fd_minus1", connect(-1, (struct sockaddr *)&server, sizeof server));
    CALL("connect_fd_9999", connect(9999, (struct sockaddr *)&server, sizeof server));
    fd = tcp4();
    close(fd);
    CALL("connect_closed_fd", connect(fd, (struct sockaddr *)&server, sizeof server));
    CALL("connect_pipe", connect(pipefd[0], (struct sockaddr *)&server, sizeof server));
    CALL("connect_pipe_null", connect(pipefd[1], NULL, 0));

    fd = tcp4();
    CALL("connect_refused", connect(fd, (struct sockaddr *)&closed_port, sizeof closed_port));
    close(fd);

    fd = tcp4();
    CALL("connect_ok", connect(fd, (struct sockaddr *)&server, sizeof server));
    CALL("connect_again_isconn", connect(fd, (struct sockaddr *)&server, sizeof server));
    CALL("send_connected", send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL));
    CALL("sendto_connected_tcp_with_addr", sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, (struct sockaddr *)&server, sizeof server));
    close(fd);

    fd = tcp4();
    fcntl(fd, F_SETFL, O_NONBLOCK);
    CALL("connect_nonblock", connect(fd, (struct sockaddr *)&server, sizeof server));
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    poll(&pfd, 1, 5000);
    int soerr = -1;
    socklen_t soerrlen = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerrlen);
    printf("connect_nonblock_so_error %d\n", soerr);
    CALL("connect_nonblock_done", connect(fd, (struct sockaddr *)&server, sizeof server));
    CALL("connect_nonblock_then_isconn", connect(fd, (struct sockaddr *)&server, sizeof server));
    close(fd);

    fd = udp4();
    CALL("connect_udp_ok", connect(fd, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("send_udp_connected", send(fd, msg, sizeof msg - 1, 0));
    CALL("connect_udp_unspec", connect(fd, (struct sockaddr *)&unspec, sizeof unspec));
    CALL("send_udp_after_unspec", send(fd, msg, sizeof msg - 1, 0));
    CALL("connect_udp_again", connect(fd, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    close(fd);

    fd = udp6();
    struct sockaddr_in6 receiver_mapped = v6("::ffff:127.0.0.1", port_of(receiver));
    CALL("sendto_udp6_mapped_ok", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_mapped, sizeof receiver_mapped));
    close(fd);

    /* ---- sendto, sendmsg, sendmmsg */
    fd = udp4();
    CALL("sendto_null_unconnected", sendto(fd, msg, sizeof msg - 1, 0, NULL, 0));
    CALL("send_unconnected", send(fd, msg, sizeof msg - 1, 0));
    struct msghdr noname;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof msg - 1};
    memset(&noname, 0, sizeof noname);
    noname.msg_iov = &iov;
    noname.msg_iovlen = 1;
    CALL("sendmsg_noname_unconnected", sendmsg(fd, &noname, 0));
    CALL("sendmsg_null_msg", sendmsg(fd, NULL, 0));
    CALL("sendto_short", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, 8));
    CALL("sendto_len1", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, 1));
    CALL("sendto_unknown_family", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&unknown, sizeof unknown));
    CALL("sendto_unix_on_udp", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&unix_addr, sizeof unix_addr));
    CALL("sendto_v6_on_v4", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&server6, sizeof server6));
    CALL("sendto_null_buf", sendto(fd, NULL, 5, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendto_ok", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendto_zero_bytes_ok", sendto(fd, msg, 0, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendto_closed_port", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&closed_port, sizeof closed_port));

    struct msghdr named = noname;
    named.msg_name = &receiver_addr;
    named.msg_namelen = sizeof receiver_addr;
    CALL("sendmsg_ok", sendmsg(fd, &named, 0));

    /* The caller's own ancillary data (IP_TOS) stays with the datagram. */
    union {
        char bytes[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr with_control = named;
    with_control.msg_control = control.bytes;
    with_control.msg_controllen = sizeof control.bytes;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&with_control);
    cmsg->cmsg_level = IPPROTO_IP;
    cmsg->cmsg_type = IP_TOS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    int tos = 0x10;
    memcpy(CMSG_DATA(cmsg), &tos, sizeof tos);
    CALL("sendmsg_own_control_ok", sendmsg(fd, &with_control, 0));
    struct msghdr bad_control = named;
    bad_control.msg_control = (void *)1;
    bad_control.msg_controllen = 64;
    CALL("sendmsg_bad_control_pointer", sendmsg(fd, &bad_control, 0));
    struct msghdr bad_name = named;
    bad_name.msg_name = (void *)1;
    bad_name.msg_namelen = 0;
    CALL("sendmsg_bad_name_len0", sendmsg(fd, &bad_name, 0));

    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr = named;
    mm[1].msg_hdr = noname; /* no destination: fails, after the first was sent */
    mm[2].msg_hdr = named;
    CALL("sendmmsg_two_ok", sendmmsg(fd, mm, 1, 0) + sendmmsg(fd, mm + 2, 1, 0));
    CALL("sendmmsg_stops_at_noname", sendmmsg(fd, mm, 3, 0));
    CALL("sendmmsg_first_noname", sendmmsg(fd, mm + 1, 2, 0));
    CALL("sendmmsg_null", sendmmsg(fd, NULL, 2, 0));
    CALL("sendmmsg_zero", sendmmsg(fd, mm, 0, 0));
    close(fd);

    CALL("sendto_fd_minus1", sendto(-1, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendto_fd_9999", sendto(9999, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendto_pipe", sendto(pipefd[1], msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));
    CALL("sendmsg_pipe", sendmsg(pipefd[1], &named, 0));
    CALL("sendmmsg_pipe", sendmmsg(pipefd[1], mm, 1, 0));
    fd = udp4();
    close(fd);
    CALL("sendto_closed_fd", sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&receiver_addr, sizeof receiver_addr));

    fd = tcp4();
    CALL("sendto_tcp_unconnected_with_addr", sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, (struct sockaddr *)&server, sizeof server));
    CALL("sendto_fastopen", sendto(fd, msg, sizeof msg - 1, MSG_FASTOPEN | MSG_NOSIGNAL, (struct sockaddr *)&server, sizeof server));
    close(fd);

    /* ---- pointers the kernel cannot read, and odd control data: libc
     * says EFAULT, EINVAL or ENOBUFS, or ignores what the kernel ignores */
    void *wild = (void *)-1, *page0 = (void *)1;
    fd = tcp4();
    CALL("connect_ptr_minus1", connect(fd, wild, sizeof server));
    CALL("connect_ptr_page0", connect(fd, page0, sizeof server));
    CALL("connect_ptr_minus1_len200", connect(fd, wild, 200));
    CALL("bind_ptr_minus1", bind(fd, wild, sizeof server));
    close(fd);
    fd = udp4();
    CALL("sendto_ptr_minus1", sendto(fd, msg, sizeof msg - 1, 0, wild, sizeof receiver_addr));
    CALL("sendmsg_msg_minus1", sendmsg(fd, wild, 0));
    struct msghdr odd = named;
    odd.msg_name = wild;
    CALL("sendmsg_name_minus1", sendmsg(fd, &odd, 0));
    odd = named;
    odd.msg_control = NULL;
    odd.msg_controllen = 64;
    CALL("sendmsg_control_null_len64", sendmsg(fd, &odd, 0));
    odd.msg_control = wild;
    CALL("sendmsg_control_minus1", sendmsg(fd, &odd, 0));
    odd.msg_control = control.bytes;
    /* 2^40, or 2^31 where size_t is 32 bits (-m32) */
    odd.msg_controllen = (size_t)(sizeof(size_t) > 4 ? 1ULL << 40 : 1ULL << 31);
    CALL("sendmsg_controllen_2e40", sendmsg(fd, &odd, 0));
    odd.msg_controllen = 200000;
    CALL("sendmsg_controllen_200000", sendmsg(fd, &odd, 0));
    odd.msg_controllen = 8; /* less than a header: ignored by the kernel */
    CALL("sendmsg_control_short_tail_ok", sendmsg(fd, &odd, 0));
    odd.msg_controllen = CMSG_SPACE(sizeof(int)) + 7;
    char longer[CMSG_SPACE(sizeof(int)) + 8] __attribute__((aligned(8)));
    memset(longer, 0, sizeof longer);
    memcpy(longer, control.bytes, sizeof control.bytes);
    odd.msg_control = longer;
    CALL("sendmsg_control_tos_and_tail_ok", sendmsg(fd, &odd, 0));
    CALL("sendmmsg_array_minus1", sendmmsg(fd, wild, 2, 0));
    struct mmsghdr odd_mm = {.msg_hdr = named};
    odd_mm.msg_hdr.msg_name = wild;
    CALL("sendmmsg_name_minus1", sendmmsg(fd, &odd_mm, 1, 0));
    odd_mm.msg_hdr = named;
    odd_mm.msg_hdr.msg_control = wild;
    odd_mm.msg_hdr.msg_controllen = 64;
    CALL("sendmmsg_control_minus1", sendmmsg(fd, &odd_mm, 1, 0));
    close(fd);

    /* ---- bind */
    fd = tcp4();
    CALL("bind_null", bind(fd, NULL, 16));
    CALL("bind_null_len0", bind(fd, NULL, 0));
    CALL("bind_short", bind(fd, (struct sockaddr *)&any_lo, 4));
    CALL("bind_unknown_family", bind(fd, (struct sockaddr *)&unknown, sizeof unknown));
    CALL("bind_unix_on_tcp", bind(fd, (struct sockaddr *)&unix_addr, sizeof unix_addr));
    CALL("bind_v6_on_v4", bind(fd, (struct sockaddr *)&any_lo6, sizeof any_lo6));
    CALL("bind_ok", bind(fd, (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("bind_twice", bind(fd, (struct sockaddr *)&any_lo, sizeof any_lo));
    close(fd);
    CALL("bind_fd_minus1", bind(-1, (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("bind_fd_9999", bind(9999, (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("bind_closed_fd", bind(fd, (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("bind_pipe", bind(pipefd[0], (struct sockaddr *)&any_lo, sizeof any_lo));
    CALL("bind_in_use", bind(fd2 = tcp4(), (struct sockaddr *)&server, sizeof server));
    close(fd2);

    /* A wildcard bind: where a profile has `listen`, this is the one call
     * whose outcome the profile must change (see the test). */
    struct sockaddr_in wildcard = v4("0.0.0.0", 0);
    fd = udp4();
    errno = MAGIC;
    long rc = bind(fd, (struct sockaddr *)&wildcard, sizeof wildcard);
    report("bind_wildcard4", rc, errno, local_ip(fd, buf, sizeof buf));
    close(fd);
    struct sockaddr_in6 wildcard6 = v6("::", 0);
    fd = udp6();
    errno = MAGIC;
    rc = bind(fd, (struct sockaddr *)&wildcard6, sizeof wildcard6);
    report("bind_wildcard6", rc, errno, local_ip(fd, buf, sizeof buf));
    close(fd);
    fd = udp6();
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    errno = MAGIC;
    rc = bind(fd, (struct sockaddr *)&wildcard6, sizeof wildcard6);
    report("bind_wildcard6_v6only", rc, errno, local_ip(fd, buf, sizeof buf));
    close(fd);

    /* ---- EINTR: a blocking connect to a black hole, interrupted */
    if (blackhole) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART */
        sigaction(SIGALRM, &sa, NULL);
        struct sockaddr_in hole = v4(blackhole, 80);

        fd = tcp4();
        struct itimerval timer = {.it_value = {.tv_sec = 0, .tv_usec = 300000}};
        setitimer(ITIMER_REAL, &timer, NULL);
        CALL("connect_blackhole_eintr", connect(fd, (struct sockaddr *)&hole, sizeof hole));
        printf("signal_handler ran=%d connect rc=%d errno=%s\n", (int)handler_ran, (int)handler_rc,
               handler_errno == MAGIC ? "12345" : strerrorname_np(handler_errno));
        /* Still connecting: a blocking connect waits again, and is
         * interrupted again. */
        handler_ran = 0;
        setitimer(ITIMER_REAL, &timer, NULL);
        CALL("connect_blackhole_again_eintr", connect(fd, (struct sockaddr *)&hole, sizeof hole));
        printf("signal_handler_again ran=%d\n", (int)handler_ran);
        close(fd);

        fd = tcp4();
        fcntl(fd, F_SETFL, O_NONBLOCK);
        CALL("connect_blackhole_nonblock", connect(fd, (struct sockaddr *)&hole, sizeof hole));
        CALL("connect_blackhole_nonblock_already", connect(fd, (struct sockaddr *)&hole, sizeof hole));
        close(fd);
    }

    printf("end\n");
    return 0;
}
