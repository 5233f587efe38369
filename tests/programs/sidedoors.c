/*
 * sidedoors: the calls of issue 16's side doors, each in a form the
 * kernel accepts but a shim could miss (tests/tests/side_doors_datagram.rs).
 * Every mode that sends prints the lab server's answer line (`NAME PEER_IP`,
 * telling which uplink the datagram left through) or `error ENAME`.
 *
 *   sidedoors unspec-sendto HOST PORT    AF_INET UDP socket, a datagram
 *   sidedoors unspec-sendmsg HOST PORT   to HOST:PORT named with
 *   sidedoors unspec-sendmmsg HOST PORT  sin_family = AF_UNSPEC
 *   sidedoors v6-names HOST6 HOST4 PORT  AF_INET6 UDP socket: a datagram
 *                                        named AF_INET (HOST4), then one
 *                                        named AF_UNSPEC (unconnected:
 *                                        EDESTADDRREQ)
 *   sidedoors unspec-disconnect HOST PORT
 *                                        UDP connect, connect(AF_UNSPEC),
 *                                        then send(): `disconnect rc=0`
 *                                        and `send error EDESTADDRREQ`
 *   sidedoors unspec-bind PORT           TCP bind(AF_UNSPEC, 0.0.0.0:PORT);
 *                                        prints `bound ADDR`
 *   sidedoors stale-fdopen HOST PORT     a TCP socket closed inside libc
 *                                        (fclose(fdopen())), its number
 *                                        taken by dup(udp socket), one
 *                                        datagram from the duplicate
 *   sidedoors stale-syscall HOST PORT    the same, closed by a raw
 *                                        close syscall
 *   sidedoors stale-dupfd HOST PORT      the same, closed by a raw syscall
 *                                        and taken by fcntl(F_DUPFD)
 *   sidedoors stale-udp-tfo HOST PORT    a UDP socket closed by a raw
 *                                        syscall, its number taken by
 *                                        dup(tcp socket): TCP Fast Open
 *                                        with sendto(MSG_FASTOPEN)
 *   sidedoors cmsg-overlong HOST PORT    sendmsg whose only control
 *                                        message claims more bytes than
 *                                        msg_controllen holds
 *   sidedoors cmsg-pktinfo HOST PORT IF  sendmsg with the caller's own
 *                                        IP_PKTINFO naming interface IF
 *   sidedoors cmsg-pktinfo6 HOST6 PORT IF
 *                                        the same with IPV6_PKTINFO
 *
 * Exits 0 unless its own set-up fails (2 on bad usage).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void print_error(const char *what, int err)
{
    const char *name = strerrorname_np(err);
    if (name)
        printf("%s error %s\n", what, name);
    else
        printf("%s error %d\n", what, err);
    fflush(stdout);
}

/* HOST:PORT as an IPv4 name with family `family`. */
static struct sockaddr_in name4(const char *host, const char *port, int family)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = family;
    sin.sin_port = htons(atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        die("inet_pton");
    return sin;
}

static struct sockaddr_in6 name6(const char *host, const char *port)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(atoi(port));
    if (inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1)
        die("inet_pton");
    return sin6;
}

static int udp(int family)
{
    int fd = socket(family, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    struct timeval tv = {.tv_sec = 2};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        die("SO_RCVTIMEO");
    return fd;
}

/* After a send that returned `rc`: the answer on `fd`, or the error. */
static void answer(int fd, long rc)
{
    if (rc < 0) {
        print_error("send", errno);
        return;
    }
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        print_error("recv", errno);
        return;
    }
    buf[n] = 0;
    fputs(buf, stdout);
    if (n == 0 || buf[n - 1] != '\n')
        putchar('\n');
    fflush(stdout);
}

static char payload[] = "ping";

static struct msghdr message(void *name, socklen_t len, struct iovec *iov)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    iov->iov_base = payload;
    iov->iov_len = 4;
    msg.msg_name = name;
    msg.msg_namelen = len;
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    return msg;
}

static void unspec_send(const char *how, const char *host, const char *port)
{
    int fd = udp(AF_INET);
    struct sockaddr_in sin = name4(host, port, AF_UNSPEC);
    struct iovec iov;
    struct msghdr msg = message(&sin, sizeof sin, &iov);
    long rc;
    if (strcmp(how, "sendto") == 0) {
        rc = sendto(fd, payload, 4, 0, (struct sockaddr *)&sin, sizeof sin);
    } else if (strcmp(how, "sendmsg") == 0) {
        rc = sendmsg(fd, &msg, 0);
    } else {
        struct mmsghdr mm = {.msg_hdr = msg};
        rc = sendmmsg(fd, &mm, 1, 0);
    }
    answer(fd, rc);
}

static void v6_names(const char *host6, const char *host4, const char *port)
{
    int fd = udp(AF_INET6);
    struct sockaddr_in sin = name4(host4, port, AF_INET);
    answer(fd, sendto(fd, payload, 4, 0, (struct sockaddr *)&sin, sizeof sin));
    struct sockaddr_in6 sin6 = name6(host6, port);
    sin6.sin6_family = AF_UNSPEC;
    long rc = sendto(fd, payload, 4, 0, (struct sockaddr *)&sin6, sizeof sin6);
    if (rc < 0)
        print_error("unspec", errno);
    else
        printf("unspec sent %ld\n", rc);
}

static void unspec_disconnect(const char *host, const char *port)
{
    int fd = udp(AF_INET);
    struct sockaddr_in sin = name4(host, port, AF_INET);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
        die("connect");
    struct sockaddr unspec;
    memset(&unspec, 0, sizeof unspec);
    unspec.sa_family = AF_UNSPEC;
    errno = 0;
    int rc = connect(fd, &unspec, sizeof unspec);
    printf("disconnect rc=%d\n", rc);
    if (send(fd, payload, 4, 0) < 0)
        print_error("send", errno);
    else
        printf("send sent\n");
}

static void unspec_bind(const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sin = name4("0.0.0.0", port, AF_UNSPEC);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        print_error("bind", errno);
        return;
    }
    socklen_t len = sizeof sin;
    if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        die("getsockname");
    char text[INET_ADDRSTRLEN];
    printf("bound %s\n", inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text));
}

/* A TCP socket closed behind the shim's back by `how`, its number taken by
 * a duplicate of a UDP socket; one datagram from the duplicate. */
static void stale(const char *how, const char *host, const char *port)
{
    int fd = udp(AF_INET);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp < 0)
        die("socket");
    if (strcmp(how, "fdopen") == 0) {
        FILE *f = fdopen(tcp, "r+");
        if (!f)
            die("fdopen");
        fclose(f);
    } else if (syscall(SYS_close, tcp) != 0) {
        die("close");
    }
    int copy = strcmp(how, "dupfd") == 0 ? fcntl(fd, F_DUPFD, tcp) : dup(fd);
    if (copy != tcp) {
        fprintf(stderr, "the duplicate is %d, not %d\n", copy, tcp);
        exit(1);
    }
    struct sockaddr_in sin = name4(host, port, AF_INET);
    answer(copy, sendto(copy, payload, 4, 0, (struct sockaddr *)&sin, sizeof sin));
}

static void stale_udp_tfo(const char *host, const char *port)
{
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp < 0)
        die("socket");
    int old = udp(AF_INET);
    if (syscall(SYS_close, old) != 0)
        die("close");
    int fd = dup(tcp);
    if (fd != old) {
        fprintf(stderr, "the duplicate is %d, not %d\n", fd, old);
        exit(1);
    }
    struct timeval tv = {.tv_sec = 2};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        die("SO_RCVTIMEO");
    struct sockaddr_in sin = name4(host, port, AF_INET);
    char line[] = "ping\n";
    answer(fd, sendto(fd, line, 5, MSG_FASTOPEN, (struct sockaddr *)&sin, sizeof sin));
}

static void cmsg_overlong(const char *host, const char *port)
{
    int fd = udp(AF_INET);
    struct sockaddr_in sin = name4(host, port, AF_INET);
    struct iovec iov;
    struct msghdr msg = message(&sin, sizeof sin, &iov);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct cmsghdr *cmsg = (struct cmsghdr *)control.buf;
    /* A level UDP and IP skip, so that only the length matters. It claims
     * 40 bytes of data where the buffer holds 4: exactly the room an
     * IP_PKTINFO message appended after the buffer would take. */
    cmsg->cmsg_level = IPPROTO_TCP;
    cmsg->cmsg_type = 1;
    cmsg->cmsg_len = CMSG_LEN(40);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    answer(fd, sendmsg(fd, &msg, 0));
}

static void cmsg_pktinfo(const char *host, const char *port, const char *ifname, int v6)
{
    int fd = udp(v6 ? AF_INET6 : AF_INET);
    unsigned ifindex = if_nametoindex(ifname);
    if (ifindex == 0)
        die("if_nametoindex");
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct cmsghdr *cmsg = (struct cmsghdr *)control.buf;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct iovec iov;
    struct msghdr msg;
    if (v6) {
        sin6 = name6(host, port);
        msg = message(&sin6, sizeof sin6, &iov);
        cmsg->cmsg_level = SOL_IPV6;
        cmsg->cmsg_type = IPV6_PKTINFO;
        cmsg->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
        struct in6_pktinfo info = {.ipi6_ifindex = ifindex};
        memcpy(CMSG_DATA(cmsg), &info, sizeof info);
        msg.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
    } else {
        sin = name4(host, port, AF_INET);
        msg = message(&sin, sizeof sin, &iov);
        cmsg->cmsg_level = SOL_IP;
        cmsg->cmsg_type = IP_PKTINFO;
        cmsg->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo info = {.ipi_ifindex = ifindex};
        memcpy(CMSG_DATA(cmsg), &info, sizeof info);
        msg.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    }
    msg.msg_control = control.buf;
    answer(fd, sendmsg(fd, &msg, 0));
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strncmp(mode, "unspec-send", 11) == 0 && argc == 4)
        unspec_send(mode + 11, argv[2], argv[3]);
    else if (strcmp(mode, "v6-names") == 0 && argc == 5)
        v6_names(argv[2], argv[3], argv[4]);
    else if (strcmp(mode, "unspec-disconnect") == 0 && argc == 4)
        unspec_disconnect(argv[2], argv[3]);
    else if (strcmp(mode, "unspec-bind") == 0 && argc == 3)
        unspec_bind(argv[2]);
    else if (strncmp(mode, "stale-", 6) == 0 && strcmp(mode, "stale-udp-tfo") != 0 && argc == 4)
        stale(mode + 6, argv[2], argv[3]);
    else if (strcmp(mode, "stale-udp-tfo") == 0 && argc == 4)
        stale_udp_tfo(argv[2], argv[3]);
    else if (strcmp(mode, "cmsg-overlong") == 0 && argc == 4)
        cmsg_overlong(argv[2], argv[3]);
    else if (strcmp(mode, "cmsg-pktinfo") == 0 && argc == 5)
        cmsg_pktinfo(argv[2], argv[3], argv[4], 0);
    else if (strcmp(mode, "cmsg-pktinfo6") == 0 && argc == 5)
        cmsg_pktinfo(argv[2], argv[3], argv[4], 1);
    else {
        fprintf(stderr, "usage: see the comment at the top of sidedoors.c\n");
        return 2;
    }
    return 0;
}
