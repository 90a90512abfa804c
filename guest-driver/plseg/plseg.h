/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * libplseg: shared segments, and pipes and message queues built on them.
 *
 * A segment is /dev/partlink/seg/<name> in a guest: memory that several
 * partitions map, with a doorbell.  plseg_open() maps one;
 * plseg_attach_mem() wraps memory and doorbell callbacks the caller
 * provides (the host tests: a memfd and eventfds).  On a regular file
 * (the host test mode, where the driver's ioctls fail with ENOTTY) the
 * size comes from fstat, this partition's port is 0, ringing does nothing
 * and waiting for a doorbell sleeps a millisecond: both sides poll.
 *
 * A pipe (plpipe_*) carries one byte stream from one writer to one
 * reader; a message queue (plmq_*) carries whole messages, in order, in
 * two directions (queue 0 and queue 1), one writer and one reader each.
 * docs/spec.md section 17 describes the bytes in the segment.
 *
 * Functions return 0 (or a count) on success and a negative errno:
 *   -ENOENT, -EACCES, -EROFS   opening the segment
 *   -EPROTO       the segment's layout is not one this library speaks
 *                 (bad magic or version, or a corrupt header or index)
 *   -EPROTOTYPE   the segment holds the other kind (pipe vs queue)
 *   -ENOSPC       the segment is too small for the layout
 *   -EBUSY        that role already has a live endpoint (see *holder)
 *   -EPIPE        the peer went away: its heartbeat stopped, or it left
 *                 without closing the stream, or (pipe writer) the reader
 *                 closed before reading everything
 *   -ESTALE       this endpoint was declared dead (stalled for longer
 *                 than PLSEG_STALE_MS) and replaced
 *   -ENODEV       the operator revoked the segment
 *   -ETIMEDOUT    the timeout passed; -EAGAIN: timeout 0 and not ready
 *   -EMSGSIZE     message larger than the queue's maximum, or than the
 *                 caller's buffer (plmq_recv; the message stays queued)
 *   -EINTR        a wait was cancelled (plseg_chan_opts.cancel), or a
 *                 signal interrupted it while it slept
 *
 * Timeouts are in milliseconds; -1 waits forever.  Not thread-safe: one
 * thread per endpoint.  An attached endpoint must call into the library
 * (any call, or plpipe_heartbeat/plmq_heartbeat) at least every
 * PLSEG_HEARTBEAT_MS, or its peer may think it is gone after
 * PLSEG_STALE_MS.  Blocking calls take care of this themselves.
 */
#ifndef PLSEG_H
#define PLSEG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLSEG_DEFAULT_DIR	"/dev/partlink/seg"
#define PLSEG_NAME_MAX		31
#define PLSEG_RING_ALL		0x80000000u	/* PARTLINK_SEG_RING_ALL */

/* plseg_open flags */
#define PLSEG_RDONLY		0x1

/* struct plseg_info.flags: PARTLINK_SEG_* */
#define PLSEG_F_READ_ONLY	0x2
#define PLSEG_F_PINNED		0x4

struct plseg;

/* Doorbells for plseg_attach_mem(). */
struct plseg_ops {
	/* Wait for a doorbell: 1 rung, 0 timed out, or -errno. */
	int (*wait)(void *ctx, int timeout_ms);
	/* Ring a port (or PLSEG_RING_ALL): 0 or -errno. */
	int (*ring)(void *ctx, uint32_t port);
};

struct plseg_info {
	char name[PLSEG_NAME_MAX + 1];
	uint64_t size;
	uint32_t flags;		/* PLSEG_F_* */
	uint32_t id;
	uint32_t port;		/* this partition's port */
	int host_mode;		/* 1: a regular file, no doorbells */
};

/* Who holds a role (for -EBUSY), or who the peer is. */
struct plseg_peer {
	uint32_t pid;
	uint32_t port;
};

/* /DIR/NAME, DIR NULL: PLSEG_DEFAULT_DIR. */
int plseg_open(const char *name, const char *dir, unsigned int flags,
	       struct plseg **out);
int plseg_open_path(const char *path, unsigned int flags, struct plseg **out);
/* mem stays the caller's; so does ctx. */
int plseg_attach_mem(void *mem, size_t size, uint32_t port,
		     const struct plseg_ops *ops, void *ctx, struct plseg **out);
/* Closes every pipe and queue still attached to it first. */
void plseg_close(struct plseg *seg);

void *plseg_mem(const struct plseg *seg);
size_t plseg_size(const struct plseg *seg);
uint32_t plseg_port(const struct plseg *seg);
int plseg_get_info(const struct plseg *seg, struct plseg_info *info);
/* 1 rung, 0 timed out, -errno (-ENODEV: revoked). */
int plseg_wait(struct plseg *seg, int timeout_ms);
int plseg_ring(struct plseg *seg, uint32_t port);
/* 0 if usable, -ENODEV once revoked (asks the driver when there is one). */
int plseg_check(struct plseg *seg);

/*
 * Turn SIGBUS on a mapped segment (the operator revoked it) into -ENODEV
 * from the call that touched it: the handler maps anonymous memory over
 * the segment and marks it revoked; the library checks the mark before
 * it reports data.  A SIGBUS anywhere else keeps its old disposition.
 * Process-wide; call once, early.
 */
int plseg_guard_sigbus(void);

const char *plseg_strerror(int err);

/* Options for attaching a pipe or a queue end; zero-initialize. */
struct plseg_chan_opts {
	int spin_us;		/* busy-poll before sleeping; 0: default */
	int no_spin;		/* 1: never busy-poll */
	int timeout_ms;		/* attach: wait for the last stream; 0: ever */
	struct plseg_peer *holder;	/* out, on -EBUSY */
	/*
	 * Non-zero *cancel ends every wait with -EINTR (a signal handler's
	 * flag); checked at least every PLSEG_HEARTBEAT_MS.
	 */
	volatile sig_atomic_t *cancel;
};

#define PLSEG_SPIN_US_DEFAULT	20
#define PLSEG_SPIN_US_MAX	50000	/* longer asks are cut to this */

struct plseg_stats {
	uint64_t rings;		/* doorbells this end rang */
	uint64_t sleeps;	/* times it waited for a doorbell */
	uint64_t wakeups;	/* ... and a doorbell came */
};

enum plseg_role {
	PLSEG_WRITER = 1,
	PLSEG_READER = 2,
};

/* Byte pipes */
struct plpipe;

int plpipe_attach(struct plseg *seg, enum plseg_role role,
		  const struct plseg_chan_opts *opts, struct plpipe **out);
/* Some bytes, at least 1: waits for room. */
ssize_t plpipe_write(struct plpipe *p, const void *buf, size_t len,
		     int timeout_ms);
int plpipe_write_all(struct plpipe *p, const void *buf, size_t len,
		     int timeout_ms);
/* Writer: end the stream and wait until the reader has read all of it. */
int plpipe_finish(struct plpipe *p, int timeout_ms);
/* Some bytes, at least 1; 0 at the end of the stream. */
ssize_t plpipe_read(struct plpipe *p, void *buf, size_t cap, int timeout_ms);
/* Writer: ends the stream (unless an error broke it); reader: leaves. */
void plpipe_close(struct plpipe *p);
/* Leave without ending the stream: the reader gets -EPIPE. */
void plpipe_abort(struct plpipe *p);
void plpipe_heartbeat(struct plpipe *p);
size_t plpipe_capacity(const struct plpipe *p);
void plpipe_stats(const struct plpipe *p, struct plseg_stats *st);
int plpipe_peer(const struct plpipe *p, struct plseg_peer *peer);

/* Message queues */
struct plmq;

#define PLMQ_END	1	/* plmq_recv: the end-of-stream marker */

/* queue 0 or 1 */
int plmq_attach(struct plseg *seg, unsigned int queue, enum plseg_role role,
		const struct plseg_chan_opts *opts, struct plmq **out);
int plmq_send(struct plmq *q, const void *msg, size_t len, int timeout_ms);
/* Queue the end-of-stream marker. */
int plmq_send_end(struct plmq *q, int timeout_ms);
/* 0 and *len: a message; PLMQ_END; or -errno. */
int plmq_recv(struct plmq *q, void *buf, size_t cap, size_t *len,
	      int timeout_ms);
void plmq_close(struct plmq *q);
void plmq_heartbeat(struct plmq *q);
size_t plmq_max_msg(const struct plmq *q);
void plmq_stats(const struct plmq *q, struct plseg_stats *st);
int plmq_peer(const struct plmq *q, struct plseg_peer *peer);

/*
 * Administration: what is in a segment, and starting over.
 * plseg_layout_reset() zeroes the header so that the next opener
 * initializes it; unless force, it refuses (-EBUSY) while any endpoint's
 * heartbeat moves (it watches for up to PLSEG_STALE_MS).
 */
int plseg_layout_describe(struct plseg *seg, char *buf, size_t len);
int plseg_layout_reset(struct plseg *seg, int force);

#ifdef __cplusplus
}
#endif

#endif /* PLSEG_H */
