/*
 * onesocket: one socket() call and nothing else, the least network use a
 * process can make (benches/systemwide.sh): with libbindto.so preloaded,
 * it pays for the front's decision and one hook's first call.
 */
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    return fd < 0;
}
