// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * libplseg: opening, mapping and doorbells of a shared segment, and the
 * SIGBUS guard for revoked segments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <partlink/partlink_abi.h>

#include "plseg_int.h"

static_assert(PLSEG_RING_ALL == PARTLINK_SEG_RING_ALL, "ring all");
static_assert(PLSEG_NAME_MAX + 1 == PARTLINK_SEG_NAME_LEN, "name length");
static_assert(PLSEG_F_READ_ONLY == PARTLINK_SEG_READ_ONLY, "read-only");
static_assert(PLSEG_F_PINNED == PARTLINK_SEG_PINNED, "pinned");

void plseg_sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The SIGBUS guard.  A small table of mapped ranges, read by the handler
 * without locks: a slot is published by storing its start last.
 */
#define GUARD_SLOTS 16

struct guard_slot {
	uintptr_t start;	/* 0: free */
	size_t len;
	struct plseg *seg;
};

static struct guard_slot guard[GUARD_SLOTS];
static struct sigaction old_sigbus;
static int guard_installed;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int i;

	for (i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t start = __atomic_load_n(&guard[i].start,
						  __ATOMIC_ACQUIRE);
		struct plseg *seg;

		if (!start || a < start || a - start >= guard[i].len)
			continue;
		seg = guard[i].seg;
		/*
		 * mmap is a plain system call here: replace the dead mapping
		 * with zeroes so that the faulting access completes, and let
		 * the library find the mark before it reports anything.
		 */
		if (mmap((void *)start, guard[i].len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		    MAP_FAILED)
			break;
		__atomic_store_n(&seg->revoked, 1, __ATOMIC_RELEASE);
		return;
	}
	/* Not ours: what would have happened without us. */
	if (old_sigbus.sa_flags & SA_SIGINFO && old_sigbus.sa_sigaction) {
		old_sigbus.sa_sigaction(sig, si, uc);
		return;
	}
	if (old_sigbus.sa_handler != SIG_DFL &&
	    old_sigbus.sa_handler != SIG_IGN) {
		old_sigbus.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL);
	/* returning re-executes the access, which now kills the process */
}

int plseg_guard_sigbus(void)
{
	struct sigaction sa;

	if (guard_installed)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old_sigbus) < 0)
		return -errno;
	guard_installed = 1;
	return 0;
}

static void guard_register(struct plseg *seg)
{
	int i;

	seg->guard_slot = -1;
	for (i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t zero = 0;

		/* claim with a sentinel, fill, then publish the start */
		if (!__atomic_compare_exchange_n(&guard[i].start, &zero, 1,
						 false, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		guard[i].len = seg->size;
		guard[i].seg = seg;
		__atomic_store_n(&guard[i].start, (uintptr_t)seg->mem,
				 __ATOMIC_RELEASE);
		seg->guard_slot = i;
		return;
	}
}

static void guard_unregister(struct plseg *seg)
{
	if (seg->guard_slot < 0)
		return;
	__atomic_store_n(&guard[seg->guard_slot].start, 0, __ATOMIC_RELEASE);
	seg->guard_slot = -1;
}

bool plseg_is_revoked(const struct plseg *seg)
{
	return __atomic_load_n(&seg->revoked, __ATOMIC_ACQUIRE);
}

static struct plseg *seg_new(void)
{
	struct plseg *seg = calloc(1, sizeof(*seg));

	if (seg) {
		seg->fd = -1;
		seg->guard_slot = -1;
	}
	return seg;
}

static int valid_name(const char *name)
{
	size_t n = strlen(name);

	return n && n <= PLSEG_NAME_MAX && !strchr(name, '/') &&
	       strcmp(name, ".") && strcmp(name, "..");
}

int plseg_open(const char *name, const char *dir, unsigned int flags,
	       struct plseg **out)
{
	char path[4096];
	int n;

	if (!valid_name(name))
		return -EINVAL;
	n = snprintf(path, sizeof(path), "%s/%s", dir ? dir : PLSEG_DEFAULT_DIR,
		     name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	return plseg_open_path(path, flags, out);
}

int plseg_open_path(const char *path, unsigned int flags, struct plseg **out)
{
	struct partlink_seg_info pi;
	struct plseg *seg;
	struct stat st;
	const char *base;
	int prot, err;

	seg = seg_new();
	if (!seg)
		return -ENOMEM;
	seg->rdonly = !!(flags & PLSEG_RDONLY);
	seg->fd = open(path, (seg->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
			     O_NONBLOCK);
	if (seg->fd < 0) {
		err = -errno;
		goto fail;
	}
	if (fstat(seg->fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		goto fail;
	}
	memset(&pi, 0, sizeof(pi));
	if (ioctl(seg->fd, PARTLINK_SEG_IOC_INFO, &pi) == 0) {
		memcpy(seg->info.name, pi.name, PLSEG_NAME_MAX);
		seg->info.size = pi.size;
		seg->info.flags = pi.flags;
		seg->info.id = pi.id;
		seg->info.port = pi.port;
	} else if (errno == ENOTTY || errno == EINVAL) {
		/* a regular file: the host test mode */
		if (!S_ISREG(st.st_mode)) {
			err = -ENOTTY;
			goto fail;
		}
		base = strrchr(path, '/');
		base = base ? base + 1 : path;
		snprintf(seg->info.name, sizeof(seg->info.name), "%s", base);
		seg->info.size = (uint64_t)st.st_size;
		seg->info.host_mode = 1;
		seg->host_mode = 1;
	} else {
		err = -errno;
		goto fail;
	}
	if (seg->info.size == 0 || seg->info.size > SIZE_MAX / 2) {
		err = -EPROTO;
		goto fail;
	}
	seg->size = seg->info.size;
	prot = PROT_READ | (seg->rdonly ? 0 : PROT_WRITE);
	seg->mem = mmap(NULL, seg->size, prot, MAP_SHARED, seg->fd, 0);
	if (seg->mem == MAP_FAILED) {
		err = -errno;
		seg->mem = NULL;
		goto fail;
	}
	seg->mapped = 1;
	guard_register(seg);
	*out = seg;
	return 0;
fail:
	if (seg->fd >= 0)
		close(seg->fd);
	free(seg);
	return err;
}

int plseg_attach_mem(void *mem, size_t size, uint32_t port,
		     const struct plseg_ops *ops, void *ctx, struct plseg **out)
{
	struct plseg *seg;

	if (!mem || !size || !ops || !ops->wait || !ops->ring)
		return -EINVAL;
	seg = seg_new();
	if (!seg)
		return -ENOMEM;
	seg->mem = mem;
	seg->size = size;
	seg->ops = ops;
	seg->ctx = ctx;
	seg->info.size = size;
	seg->info.port = port;
	snprintf(seg->info.name, sizeof(seg->info.name), "mem");
	guard_register(seg);
	*out = seg;
	return 0;
}

void plseg_close(struct plseg *seg)
{
	int i;

	if (!seg)
		return;
	for (i = 0; i < PLSEG_MAX_CHANS; i++)
		if (seg->chans[i])
			plchan_detach(seg->chans[i], false);
	guard_unregister(seg);
	if (seg->mapped)
		munmap(seg->mem, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);
	free(seg);
}

void *plseg_mem(const struct plseg *seg)
{
	return seg->mem;
}

size_t plseg_size(const struct plseg *seg)
{
	return seg->size;
}

uint32_t plseg_port(const struct plseg *seg)
{
	return seg->info.port;
}

int plseg_get_info(const struct plseg *seg, struct plseg_info *info)
{
	*info = seg->info;
	return 0;
}

int plseg_wait(struct plseg *seg, int timeout_ms)
{
	struct pollfd pfd;
	uint64_t count;
	int r;

	if (plseg_is_revoked(seg))
		return -ENODEV;
	if (seg->ops)
		return seg->ops->wait(seg->ctx, timeout_ms);
	if (seg->host_mode) {
		long us = PLSEG_HOST_POLL_US;

		if (timeout_ms >= 0 && timeout_ms * 1000L < us)
			us = timeout_ms * 1000L;
		if (us > 0) {
			struct timespec ts = { 0, us * 1000 };

			if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
				return -EINTR;
		}
		return 0;
	}
	pfd.fd = seg->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
		return plseg_check(seg) ? -ENODEV : 0;
	/* consume the ring; the file is O_NONBLOCK */
	if (read(seg->fd, &count, sizeof(count)) < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 1;
		return -errno;
	}
	return 1;
}

int plseg_ring(struct plseg *seg, uint32_t port)
{
	struct partlink_seg_ring ring;

	if (plseg_is_revoked(seg))
		return -ENODEV;
	if (seg->ops)
		return seg->ops->ring(seg->ctx, port);
	if (seg->host_mode)
		return 0;
	memset(&ring, 0, sizeof(ring));
	ring.port = port;
	if (ioctl(seg->fd, PARTLINK_SEG_IOC_RING, &ring) < 0)
		return -errno;
	return 0;
}

int plseg_check(struct plseg *seg)
{
	struct partlink_seg_info pi;

	if (plseg_is_revoked(seg))
		return -ENODEV;
	if (seg->fd < 0 || seg->host_mode)
		return 0;
	if (ioctl(seg->fd, PARTLINK_SEG_IOC_INFO, &pi) < 0 && errno == ENODEV)
		return -ENODEV;
	return 0;
}

int plseg_add_chan(struct plseg *seg, struct plchan *c)
{
	int i;

	for (i = 0; i < PLSEG_MAX_CHANS; i++) {
		if (!seg->chans[i]) {
			seg->chans[i] = c;
			return 0;
		}
	}
	return -EMFILE;
}

void plseg_del_chan(struct plseg *seg, struct plchan *c)
{
	int i;

	for (i = 0; i < PLSEG_MAX_CHANS; i++)
		if (seg->chans[i] == c)
			seg->chans[i] = NULL;
}

void plseg_heartbeat_all(struct plseg *seg)
{
	int i;

	for (i = 0; i < PLSEG_MAX_CHANS; i++)
		if (seg->chans[i])
			plchan_heartbeat(seg->chans[i]);
}

const char *plseg_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case EPROTO:
		return "not a plseg segment, or a corrupt header or index";
	case EPROTOTYPE:
		return "the segment holds the other kind (pipe vs queue)";
	case ENOSPC:
		return "the segment is too small";
	case EBUSY:
		return "that end already has a live process";
	case EPIPE:
		return "the peer went away";
	case ESTALE:
		return "this end was declared dead and replaced";
	case ENODEV:
		return "the segment was revoked";
	case ETIMEDOUT:
		return "timed out";
	case EMSGSIZE:
		return "message too large";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
