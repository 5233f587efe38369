/*
 * rawcalls: network calls made with syscall(2), past libc (and so past
 * any preloaded library), for tests/tests/supervise.rs.
 *
 *   rawcalls tcp HOST PORT    socket + connect + write + read, all raw;
 *                             prints the answer or `error ENAME`
 *   rawcalls udp HOST PORT    one datagram with a raw sendto on an
 *                             unconnected socket; prints the answer or
 *                             `error ENAME`
 *   rawcalls uring HOST PORT  a TCP connect through io_uring (raw
 *                             io_uring_setup, no liburing); prints
 *                             `setup error ENAME` when io_uring is refused,
 *                             else the answer or `error ENAME`
 *
 * Built dynamic and static (-static) by the tests. Exits 0 on an answer
 * (or a refused io_uring), 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static long raw_socket(int type)
{
	return syscall(SYS_socket, AF_INET, type, 0);
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int answer(int fd)
{
	char buf[512];
	long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
	if (n < 0) {
		printf("error %s\n", strerrorname_np(errno));
		return 1;
	}
	buf[n] = 0;
	printf("%s", buf);
	if (n == 0 || buf[n - 1] != '\n')
		printf("\n");
	return 0;
}

static int tcp(struct sockaddr_in *to)
{
	int fd = raw_socket(SOCK_STREAM);
	timeouts(fd);
	if (syscall(SYS_connect, fd, to, sizeof *to) != 0) {
		printf("error %s\n", strerrorname_np(errno));
		return 1;
	}
	syscall(SYS_write, fd, "hello\n", 6);
	return answer(fd);
}

static int udp(struct sockaddr_in *to)
{
	int fd = raw_socket(SOCK_DGRAM);
	timeouts(fd);
	if (syscall(SYS_sendto, fd, "ping", 4, 0, to, sizeof *to) != 4) {
		printf("error %s\n", strerrorname_np(errno));
		return 1;
	}
	return answer(fd);
}

static int uring(struct sockaddr_in *to)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ring = syscall(SYS_io_uring_setup, 4, &p);
	if (ring < 0) {
		printf("setup error %s\n", strerrorname_np(errno));
		return 0;
	}
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			IORING_OFF_SQ_RING);
	char *cq = mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe),
					 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
					 IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		printf("error mmap\n");
		return 1;
	}
	int fd = raw_socket(SOCK_STREAM);
	timeouts(fd);
	struct io_uring_sqe *sqe = &sqes[0];
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = IORING_OP_CONNECT;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)to;
	sqe->off = sizeof *to;
	uint32_t *tail = (uint32_t *)(sq + p.sq_off.tail);
	uint32_t *array = (uint32_t *)(sq + p.sq_off.array);
	array[*tail & *(uint32_t *)(sq + p.sq_off.ring_mask)] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		printf("error %s\n", strerrorname_np(errno));
		return 1;
	}
	uint32_t head = __atomic_load_n((uint32_t *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	int res = cqes[head & *(uint32_t *)(cq + p.cq_off.ring_mask)].res;
	if (res < 0) {
		printf("error %s\n", strerrorname_np(-res));
		return 1;
	}
	syscall(SYS_write, fd, "hello\n", 6);
	return answer(fd);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
	if (inet_pton(AF_INET, argv[2], &to.sin_addr) != 1)
		return 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[1], "tcp"))
		return tcp(&to);
	if (!strcmp(argv[1], "udp"))
		return udp(&to);
	if (!strcmp(argv[1], "uring"))
		return uring(&to);
	return 2;
}
