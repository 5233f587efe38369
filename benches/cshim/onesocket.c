/*
 * onesocket: one socket() call and nothing else, the least network use a
 * process can make (benches/systemwide.sh): with libbindto.so preloaded,
 * it pays for the front's decision and one hook's first call.
 *
 * Built with -DCONNECT, it also connects the socket to 127.0.0.1:9 (no
 * packet leaves), which makes a loaded engine read the config; a separate
 * program, so that the measured one imports nothing more.
 */
#include <sys/socket.h>
#ifdef CONNECT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#endif

int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return 1;
#ifdef CONNECT
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
        return 1;
#endif
    return 0;
}
