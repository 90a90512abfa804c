// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * plseg: look at and poke a shared segment from a shell, with nothing but
 * the device file's system calls -- for scripts, tests, and for seeing
 * what the driver does: info, read and write bytes, hold a mapping (and
 * see it revoked), wait for a doorbell, ring one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <partlink/partlink_abi.h>

#include "cli.h"	/* the exit statuses plpipe and plmq use */

static const char usage_text[] =
	"usage: plseg [--as UID:GID] COMMAND NAME ...\n"
	"       plseg info NAME                  name, size, flags, id, own port\n"
	"       plseg read NAME [OFFSET [LEN]]   the bytes, raw, on stdout\n"
	"       plseg write NAME OFFSET TEXT     TEXT into the segment at OFFSET\n"
	"       plseg hold NAME SECONDS          keep it mapped, touching it\n"
	"       plseg wait NAME [SECONDS]        wait for a doorbell\n"
	"       plseg ring NAME PORT|all         ring a partition's port, or all\n"
	"\n"
	"NAME is a segment in /dev/partlink/seg, or a path with a '/'.\n"
	"--as UID:GID drops to that user and group (no others) first, to see\n"
	"what the device file's owner and mode let them do.\n"
	"status: 0 done, 1 failure, 2 bad command line, 3 no such segment,\n"
	"4 permission denied, 5 segment read-only, 7 segment revoked (ENODEV,\n"
	"or SIGBUS on the mapping), 10 timed out.\n";

static const char *seg_name;
static sigjmp_buf bus_jump;

static int fail(const char *what, int err)
{
	fprintf(stderr, "plseg: %s: %s: %s\n", seg_name, what, strerror(err));
	switch (err) {
	case ENOENT:
		return EXIT_NO_SEGMENT;
	case EACCES:
	case EPERM:
		return EXIT_PERMISSION;
	case EROFS:
		return EXIT_READ_ONLY;
	case ENODEV:
		return EXIT_REVOKED;
	default:
		return EXIT_FAIL;
	}
}

static int open_segment(int flags, struct partlink_seg_info *info)
{
	char path[256];
	int fd;

	if (strchr(seg_name, '/'))
		snprintf(path, sizeof(path), "%s", seg_name);
	else
		snprintf(path, sizeof(path), "/dev/partlink/seg/%s", seg_name);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, PARTLINK_SEG_IOC_INFO, info) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -1 : 0;
}

static void on_sigbus(int sig)
{
	siglongjmp(bus_jump, sig);
}

static int map_segment(int fd, size_t size, int prot, uint8_t **mem)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*mem = p;
	return 0;
}

/* Out of a mapping that may be revoked under us */
static int copy_out(const uint8_t *src, size_t len)
{
	if (sigsetjmp(bus_jump, 1)) {
		fprintf(stderr, "plseg: %s: revoked (SIGBUS)\n", seg_name);
		return EXIT_REVOKED;
	}
	if (fwrite(src, 1, len, stdout) != len)
		return fail("write to stdout", errno);
	return EXIT_OK;
}

static int copy_in(uint8_t *dst, const char *src, size_t len)
{
	if (sigsetjmp(bus_jump, 1)) {
		fprintf(stderr, "plseg: %s: revoked (SIGBUS)\n", seg_name);
		return EXIT_REVOKED;
	}
	memcpy(dst, src, len);
	return EXIT_OK;
}

/* A page every 100 ms, for @seconds, or until the mapping is revoked */
static int touch(const volatile uint8_t *mem, size_t size, uint64_t seconds)
{
	uint64_t i;

	if (sigsetjmp(bus_jump, 1)) {
		fprintf(stderr, "plseg: %s: revoked (SIGBUS)\n", seg_name);
		return EXIT_REVOKED;
	}
	for (i = 0; i < seconds * 10; i++) {
		(void)mem[(i * 4096) % size];
		usleep(100000);
	}
	return EXIT_OK;
}

static int cmd_info(int argc, char **argv)
{
	struct partlink_seg_info info;
	int fd;

	(void)argv;
	if (argc != 0)
		return EXIT_USAGE;
	fd = open_segment(O_RDONLY, &info);
	if (fd < 0)
		return fail("open", -fd);
	printf("name %s\nsize %" PRIu64 "\nflags%s%s\nid %u\nport %u\n",
	       info.name, (uint64_t)info.size,
	       info.flags & PARTLINK_SEG_READ_ONLY ? " read-only" : " read-write",
	       info.flags & PARTLINK_SEG_PINNED ? " pinned" : "",
	       info.id, info.port);
	close(fd);
	return EXIT_OK;
}

static int cmd_read(int argc, char **argv)
{
	struct partlink_seg_info info;
	uint64_t offset = 0, len;
	uint8_t *mem = NULL;
	int fd, err;

	if (argc > 2 || (argc > 0 && parse_u64(argv[0], &offset)))
		return EXIT_USAGE;
	fd = open_segment(O_RDONLY, &info);
	if (fd < 0)
		return fail("open", -fd);
	len = info.size > offset ? info.size - offset : 0;
	if (argc == 2 && parse_u64(argv[1], &len))
		return EXIT_USAGE;
	if (offset > info.size || len > info.size - offset) {
		fprintf(stderr, "plseg: %s: %" PRIu64 " bytes at %" PRIu64
			" are beyond its %" PRIu64 " bytes\n", seg_name, len,
			offset, (uint64_t)info.size);
		return EXIT_USAGE;
	}
	err = map_segment(fd, info.size, PROT_READ, &mem);
	if (err)
		return fail("mmap", -err);
	return copy_out(mem + offset, len);
}

static int cmd_write(int argc, char **argv)
{
	struct partlink_seg_info info;
	uint64_t offset;
	size_t len;
	uint8_t *mem = NULL;
	int fd, err;

	if (argc != 2 || parse_u64(argv[0], &offset))
		return EXIT_USAGE;
	len = strlen(argv[1]);
	fd = open_segment(O_RDWR, &info);
	if (fd < 0)
		return fail("open for writing", -fd);
	if (offset > info.size || len > info.size - offset) {
		fprintf(stderr, "plseg: %s: %zu bytes at %" PRIu64
			" are beyond its %" PRIu64 " bytes\n", seg_name, len,
			offset, (uint64_t)info.size);
		return EXIT_USAGE;
	}
	err = map_segment(fd, info.size, PROT_READ | PROT_WRITE, &mem);
	if (err)
		return fail("mmap", -err);
	return copy_in(mem + offset, argv[1], len);
}

static int cmd_hold(int argc, char **argv)
{
	struct partlink_seg_info info;
	uint64_t seconds;
	uint8_t *m = NULL;
	int fd, err;

	if (argc != 1 || parse_u64(argv[0], &seconds))
		return EXIT_USAGE;
	fd = open_segment(O_RDONLY, &info);
	if (fd < 0)
		return fail("open", -fd);
	err = map_segment(fd, info.size, PROT_READ, &m);
	if (err)
		return fail("mmap", -err);
	printf("holding %s\n", info.name);
	fflush(stdout);
	return touch(m, info.size, seconds);
}

static int cmd_wait(int argc, char **argv)
{
	struct partlink_seg_info info;
	struct timespec t0, t1;
	uint64_t seconds = 0, count;
	ssize_t n;
	int fd;

	if (argc > 1 || (argc == 1 && parse_u64(argv[0], &seconds)))
		return EXIT_USAGE;
	fd = open_segment(O_RDONLY, &info);
	if (fd < 0)
		return fail("open", -fd);
	if (seconds)
		alarm(seconds);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	n = read(fd, &count, sizeof(count));
	if (n < 0)
		return errno == EINTR ? (fprintf(stderr, "plseg: %s: no doorbell "
					 "in %" PRIu64 " s\n", seg_name,
					 seconds), EXIT_TIMEOUT) :
					fail("read", errno);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("rung, %" PRIu64 " so far, after %.3f s\n", count,
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return EXIT_OK;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static int cmd_ring(int argc, char **argv)
{
	struct partlink_seg_info info;
	struct partlink_seg_ring ring = { 0 };
	uint64_t port;
	int fd;

	if (argc != 1)
		return EXIT_USAGE;
	if (!strcmp(argv[0], "all"))
		ring.port = PARTLINK_SEG_RING_ALL;
	else if (parse_u64(argv[0], &port) || port >= PARTLINK_FABRIC_PORTS)
		return EXIT_USAGE;
	else
		ring.port = port;
	fd = open_segment(O_RDONLY, &info);
	if (fd < 0)
		return fail("open", -fd);
	if (ioctl(fd, PARTLINK_SEG_IOC_RING, &ring) < 0)
		return fail("ring", errno);
	return EXIT_OK;
}

static int drop_to(const char *spec)
{
	unsigned int uid, gid;
	char end;

	if (sscanf(spec, "%u:%u%c", &uid, &gid, &end) != 2)
		return EXIT_USAGE;
	if (setgroups(0, NULL) || setgid(gid) || setuid(uid)) {
		fprintf(stderr, "plseg: cannot become %u:%u: %s\n", uid, gid,
			strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "info", cmd_info }, { "read", cmd_read },
		{ "write", cmd_write }, { "hold", cmd_hold },
		{ "wait", cmd_wait }, { "ring", cmd_ring },
	};
	struct sigaction bus = { .sa_handler = on_sigbus };
	struct sigaction alrm = { .sa_handler = on_alarm };
	size_t k;
	int st;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (argc > 2 && !strcmp(argv[1], "--as")) {
		st = drop_to(argv[2]);
		if (st == EXIT_USAGE)
			goto usage;
		if (st)
			return st;
		argv += 2;
		argc -= 2;
	}
	if (argc < 3)
		goto usage;
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(argv[1], commands[k].name))
			break;
	if (k == sizeof(commands) / sizeof(commands[0]))
		goto usage;
	seg_name = argv[2];
	sigaction(SIGBUS, &bus, NULL);
	/* No SA_RESTART: the alarm ends a wait's read() with EINTR. */
	sigaction(SIGALRM, &alrm, NULL);
	st = commands[k].run(argc - 3, argv + 3);
	if (st != EXIT_USAGE)
		return st;
usage:
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}
