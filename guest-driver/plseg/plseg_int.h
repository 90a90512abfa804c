/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * libplseg internals: the segment handle, the endpoint ("channel") shared
 * by pipes and queues, atomics on the shared layout, clocks.
 *
 * Shared fields are plain integers in struct plseg_header (so that the
 * header stays usable from C++); they are only ever accessed through the
 * helpers below, which are the C11 atomic operations (GCC's __atomic
 * builtins, what <stdatomic.h> expands to) with the orders docs/spec.md section 17
 * prescribes.  Values read from the segment are never trusted: a peer
 * may write anything.
 */
#ifndef PLSEG_INT_H
#define PLSEG_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "plseg.h"
#include "plseg_layout.h"

#define PLSEG_MAX_CHANS		8
#define PLSEG_HOST_POLL_US	500	/* host mode: a "doorbell wait" */
#define PLSEG_LOCAL_POLL_MS	1	/* a peer on our port, no self-ring */
#define PLSEG_PUBLISH_CHUNK	(256 * 1024)	/* pipe: publish this often */

struct plchan;

struct plseg {
	unsigned char *mem;
	size_t size;
	int fd;			/* -1 for plseg_attach_mem */
	int rdonly;
	int host_mode;
	int mapped;		/* we mmap()ed mem */
	struct plseg_info info;
	const struct plseg_ops *ops;
	void *ctx;
	int revoked;		/* set by the SIGBUS guard; atomic */
	int self_ring;		/* our own port: 0 untried, 1 rings, -1 no */
	int guard_slot;		/* -1: not registered */
	struct plchan *chans[PLSEG_MAX_CHANS];
};

/* One end of one queue: the common part of plpipe and plmq. */
struct plchan {
	struct plseg *seg;
	int kind;		/* PLSEG_KIND_* */
	int role;		/* PLSEG_WRITER / PLSEG_READER */
	unsigned int qidx;
	struct plseg_queue *q;
	struct plseg_end *me, *peer;
	unsigned char *ring;
	uint64_t ring_size;
	uint32_t max_msg;
	uint64_t token;
	uint64_t session;
	uint64_t idx;		/* own index: ours, never re-read */
	uint64_t hb;		/* own heartbeat */
	uint64_t want;		/* mq writer: room it waits for */
	int spin_us;
	volatile sig_atomic_t *cancel;
	bool attached;
	bool broken;		/* an error ended the stream ... */
	int err;		/* ... this one */
	bool ended;		/* pipe writer: end of stream published */
	/* watching the peer's heartbeat */
	uint64_t obs_token, obs_hb;
	int64_t obs_ms;
	struct plseg_peer last_peer;
	struct plseg_stats stats;
};

struct plpipe {
	struct plchan c;
};

struct plmq {
	struct plchan c;
};

/* Atomics on the shared layout (docs/spec.md section 17 "Memory order") */
static inline uint64_t ld64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint64_t ld64_relaxed(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void st64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint32_t ld32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void st32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint32_t xchg32(uint32_t *p, uint32_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

static inline bool cas64(uint64_t *p, uint64_t *expect, uint64_t v)
{
	return __atomic_compare_exchange_n(p, expect, v, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE);
}

static inline void full_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

void plseg_sleep_us(long us);
bool plseg_is_revoked(const struct plseg *seg);
int plseg_add_chan(struct plseg *seg, struct plchan *c);
void plseg_del_chan(struct plseg *seg, struct plchan *c);
/* Bump the heartbeat of every endpoint attached through seg. */
void plseg_heartbeat_all(struct plseg *seg);

/* plchan.c */
int plchan_attach(struct plchan *c, struct plseg *seg, int kind,
		  unsigned int qidx, int role,
		  const struct plseg_chan_opts *opts);
void plchan_detach(struct plchan *c, bool end_stream);
/* 1 ready, 0 not yet, -errno */
typedef int (*plchan_cond)(struct plchan *c);
int plchan_wait(struct plchan *c, plchan_cond cond, int timeout_ms);
/* Publish own index, and ring the peer if it sleeps. */
void plchan_publish(struct plchan *c);
/* Pipe writer: set the end-of-stream flag, and ring the reader. */
void plchan_end_stream(struct plchan *c);
/* The peer's index, checked against ours: 0 or -EPROTO. */
int plchan_peer_index(struct plchan *c, uint64_t *out);
/* 0 if @c is attached as @role and not broken, else the error to return */
int plchan_usable(struct plchan *c, int role);
int plchan_fail(struct plchan *c, int err);
void plchan_heartbeat(struct plchan *c);
int plchan_peer(const struct plchan *c, struct plseg_peer *peer);
int plchan_check_self(struct plchan *c);

#endif /* PLSEG_INT_H */
