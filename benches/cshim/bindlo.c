/* The smallest useful socket-binding preload, as the yardstick for
 * libbindto.so: connect() and sendto() on IPv4/IPv6 sockets first bind the
 * socket to the interface named by BIND_INTERFACE (default "lo") with
 * SO_BINDTODEVICE, then call libc. No profile, no rules, no error handling
 * beyond what libc returns.
 *
 *     gcc -O2 -shared -fPIC -o bindlo.so bindlo.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *interface;
static socklen_t interface_len;

static void bind_device(int fd, const struct sockaddr *addr)
{
    if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return;
    if (interface == NULL) {
        const char *name = getenv("BIND_INTERFACE");
        interface_len = (socklen_t)strlen(name ? name : "lo") + 1;
        interface = name ? name : "lo";
    }
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface, interface_len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    bind_device(fd, addr);
    return real(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
               socklen_t len)
{
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *,
                           socklen_t))dlsym(RTLD_NEXT, "sendto");
    bind_device(fd, addr);
    return real(fd, buf, n, flags, addr, len);
}
