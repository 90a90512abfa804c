// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * libplseg: one end of one queue in a segment, the part pipes and message
 * queues share: the ctl word (initialization and the attach lock),
 * claiming a role, pipe sessions, heartbeats and the peer's liveness, and
 * waiting with a spin, a sleeping flag and the doorbell.
 *
 * docs/spec.md section 17, "Attaching", is the specification of what happens here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "plseg_int.h"

enum { V_ALIVE = 1, V_DEAD, V_CHANGED };
enum { D_JOIN, D_RESET, D_WAIT, D_JUDGE };

struct verdict {
	uint64_t token;
	int v;
};

struct lock {
	uint64_t word;
	bool init;
};

static struct plseg_header *hdr(const struct plseg *seg)
{
	return (struct plseg_header *)seg->mem;
}

static uint64_t new_token(void)
{
	uint64_t t = 0;

	if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t))
		t = (uint64_t)now_ns() * 0x9e3779b97f4a7c15ull ^
		    ((uint64_t)getpid() << 32) ^ (uintptr_t)&t;
	return t ? t : 1;
}

/*
 * The ctl word.  Taking it: 0 -> INIT (then we initialize), READY -> BUSY,
 * or, when it has not moved for PLSEG_STALE_MS, INIT/BUSY -> the same
 * phase with the next sequence number (its holder died inside).
 */
static int ctl_lock(struct plseg *seg, struct lock *lk)
{
	uint64_t *ctl = &hdr(seg)->ctl.ctl;
	uint64_t seen = 0;
	int64_t since = 0;
	unsigned int spins = 0;

	for (;;) {
		uint64_t v = ld64(ctl);
		uint64_t phase = v & PLSEG_CTL_PHASE_MASK;
		uint64_t seq = v >> PLSEG_CTL_SEQ_SHIFT;
		uint64_t next;

		if (plseg_is_revoked(seg))
			return -ENODEV;
		if (v == 0) {
			next = 1ull << PLSEG_CTL_SEQ_SHIFT | PLSEG_CTL_INIT;
			if (cas64(ctl, &v, next)) {
				lk->word = next;
				lk->init = true;
				goto locked;
			}
			continue;
		}
		if (phase == PLSEG_CTL_EMPTY)
			return -EPROTO;	/* a sequence but no phase */
		if (phase == PLSEG_CTL_READY) {
			next = (seq + 1) << PLSEG_CTL_SEQ_SHIFT |
			       PLSEG_CTL_BUSY;
			if (cas64(ctl, &v, next)) {
				lk->word = next;
				lk->init = false;
				goto locked;
			}
			continue;
		}
		/* INIT or BUSY: someone is inside for a moment */
		if (v != seen || !since) {
			seen = v;
			since = now_ms();
		} else if (now_ms() - since >= PLSEG_STALE_MS) {
			next = (seq + 1) << PLSEG_CTL_SEQ_SHIFT | phase;
			if (cas64(ctl, &v, next)) {
				lk->word = next;
				lk->init = phase == PLSEG_CTL_INIT;
				goto locked;
			}
			continue;
		}
		if (++spins < 200) {
			cpu_relax();
			continue;
		}
		plseg_heartbeat_all(seg);
		plseg_sleep_us(200);
	}
locked:
	st32(&hdr(seg)->ctl.holder_pid, (uint32_t)getpid());
	st32(&hdr(seg)->ctl.holder_port, seg->info.port);
	return 0;
}

static int ctl_unlock(struct plseg *seg, struct lock *lk)
{
	uint64_t v = lk->word;
	uint64_t next = (v & ~(uint64_t)PLSEG_CTL_PHASE_MASK) |
			PLSEG_CTL_READY;

	/* fails only if we stalled for PLSEG_STALE_MS and were replaced */
	if (!cas64(&hdr(seg)->ctl.ctl, &v, next))
		return plseg_is_revoked(seg) ? -ENODEV : -EPROTO;
	return 0;
}

static int layout_init(struct plseg *seg, int kind)
{
	struct plseg_header *h = hdr(seg);
	unsigned int nq = kind == PLSEG_KIND_PIPE ? PLSEG_PIPE_QUEUES :
						    PLSEG_MQ_QUEUES;
	uint64_t ring, max;
	unsigned int i;

	if (seg->size < PLSEG_HEADER_SIZE + (uint64_t)nq * PLSEG_HEADER_SIZE)
		return -ENOSPC;
	ring = (seg->size - PLSEG_HEADER_SIZE) / nq;
	ring -= ring % PLSEG_HEADER_SIZE;
	max = ring / 2 - PLMQ_REC_HDR;
	if (max > 0x40000000)
		max = 0x40000000;

	memset(&h->id, 0, sizeof(h->id));
	memset(h->reserved, 0, sizeof(h->reserved));
	memset(h->q, 0, sizeof(h->q));
	for (i = 0; i < nq; i++) {
		struct plseg_qdesc *d = &h->q[i].desc;

		d->ring_offset = PLSEG_HEADER_SIZE + i * ring;
		d->ring_size = ring;
		d->max_msg = kind == PLSEG_KIND_MQ ? (uint32_t)max : 0;
	}
	h->id.version = PLSEG_VERSION;
	h->id.kind = (uint16_t)kind;
	h->id.header_size = PLSEG_HEADER_SIZE;
	h->id.nqueues = nq;
	h->id.seg_size = seg->size;
	h->id.magic = PLSEG_MAGIC;
	full_fence();
	return 0;
}

/* Read the id line and the queue's geometry once, and check them. */
static int layout_check(struct plchan *c, int kind, unsigned int qidx)
{
	struct plseg_header *h = hdr(c->seg);
	uint32_t magic = __atomic_load_n(&h->id.magic, __ATOMIC_RELAXED);
	uint16_t version = __atomic_load_n(&h->id.version, __ATOMIC_RELAXED);
	uint16_t hkind = __atomic_load_n(&h->id.kind, __ATOMIC_RELAXED);
	uint32_t hsize = __atomic_load_n(&h->id.header_size, __ATOMIC_RELAXED);
	uint32_t nq = __atomic_load_n(&h->id.nqueues, __ATOMIC_RELAXED);
	uint64_t size = ld64_relaxed(&h->id.seg_size);
	uint64_t off, rsize;
	uint32_t max;

	if (magic != PLSEG_MAGIC || version != PLSEG_VERSION)
		return -EPROTO;
	if (hkind != kind)
		return hkind == PLSEG_KIND_PIPE || hkind == PLSEG_KIND_MQ ?
			       -EPROTOTYPE : -EPROTO;
	if (hsize != PLSEG_HEADER_SIZE || size != c->seg->size ||
	    nq != (kind == PLSEG_KIND_PIPE ? PLSEG_PIPE_QUEUES :
					     PLSEG_MQ_QUEUES))
		return -EPROTO;
	if (qidx >= nq)
		return -EINVAL;
	off = ld64_relaxed(&h->q[qidx].desc.ring_offset);
	rsize = ld64_relaxed(&h->q[qidx].desc.ring_size);
	max = __atomic_load_n(&h->q[qidx].desc.max_msg, __ATOMIC_RELAXED);
	if (off % PLSEG_HEADER_SIZE || rsize % PLSEG_HEADER_SIZE || !rsize ||
	    off < PLSEG_HEADER_SIZE || off > size || rsize > size - off)
		return -EPROTO;
	if (kind == PLSEG_KIND_MQ && max > rsize - PLMQ_REC_HDR)
		return -EPROTO;
	c->q = &h->q[qidx];
	c->ring = c->seg->mem + off;
	c->ring_size = rsize;
	c->max_msg = kind == PLSEG_KIND_MQ ? max : 0;
	c->me = c->role == PLSEG_WRITER ? &c->q->w : &c->q->r;
	c->peer = c->role == PLSEG_WRITER ? &c->q->r : &c->q->w;
	return 0;
}

static bool cancelled(const struct plchan *c)
{
	return c->cancel && *c->cancel;
}

/*
 * Is the endpoint with this token alive?  Unlocked: watch its heartbeat
 * until it moves (alive), the owner changes, or PLSEG_STALE_MS pass.
 */
static int judge(struct plchan *c, struct plseg_end *e, uint64_t token)
{
	uint64_t hb0 = ld64(&e->heartbeat);
	int64_t t0 = now_ms();

	for (;;) {
		plseg_sleep_us(2000);
		if (plseg_is_revoked(c->seg))
			return -ENODEV;
		if (cancelled(c))
			return -EINTR;
		plseg_heartbeat_all(c->seg);
		if (ld64(&e->owner) != token)
			return V_CHANGED;
		if (ld64(&e->heartbeat) != hb0)
			return V_ALIVE;
		if (now_ms() - t0 >= PLSEG_STALE_MS)
			return V_DEAD;
	}
}

/*
 * A pipe carries one stream per session.  Join the current session if
 * this role has not had an endpoint in it yet and it is still worth
 * joining; start a new one (reset) when the other role has no live
 * endpoint; otherwise wait until the other role's endpoint leaves.
 */
static int pipe_decide(struct plchan *c, const struct verdict *other,
		       uint64_t *judge_token)
{
	struct plseg_qdesc *d = &c->q->desc;
	uint64_t wt = ld64(&d->w_token), rt = ld64(&d->r_token);
	uint64_t peer = ld64(&c->peer->owner);

	if (c->role == PLSEG_WRITER) {
		if (!wt) {
			if (!rt)
				return D_JOIN;	/* a new session */
			/* its reader gave up before any writer came */
			if (peer != rt || ld32(&c->q->r.closed))
				return D_RESET;
			if (other->token != peer)
				goto judge_peer;
			return other->v == V_ALIVE ? D_JOIN : D_RESET;
		}
		if (!peer)
			return D_RESET;
		if (other->token != peer)
			goto judge_peer;
		/* a live reader still finishing the last stream */
		return other->v == V_ALIVE ? D_WAIT : D_RESET;
	}
	if (!rt) {
		if (!wt || ld32(&c->q->w.closed))
			return D_JOIN;	/* a stream, whole, awaits us */
		if (peer != wt)
			return D_RESET;	/* its writer left it unfinished */
		if (other->token != peer)
			goto judge_peer;
		return other->v == V_ALIVE ? D_JOIN : D_RESET;
	}
	if (!peer)
		return D_RESET;
	if (other->token != peer)
		goto judge_peer;
	/* a live writer still finishing with the last reader */
	return other->v == V_ALIVE ? D_WAIT : D_RESET;
judge_peer:
	*judge_token = peer;
	return D_JUDGE;
}

static void end_clear(struct plseg_end *e)
{
	st64(&e->owner, 0);
	st32(&e->pid, 0);
	st32(&e->port, 0);
	st32(&e->sleeping, 0);
}

static void pipe_reset(struct plchan *c)
{
	struct plseg_queue *q = c->q;

	st64(&q->desc.session, ld64(&q->desc.session) + 1);
	st64(&q->desc.w_token, 0);
	st64(&q->desc.r_token, 0);
	st64(&q->w.index, 0);
	st32(&q->w.closed, 0);
	st64(&q->r.index, 0);
	st32(&q->r.closed, 0);
	/* the peer is free or dead: whatever is left of it goes */
	end_clear(c->peer);
}

static int join(struct plchan *c)
{
	struct plseg_end *me = c->me;
	uint64_t peer_idx, used;

	c->idx = ld64(&me->index);
	peer_idx = ld64(&c->peer->index);
	used = c->role == PLSEG_WRITER ? c->idx - peer_idx : peer_idx - c->idx;
	if (used > c->ring_size)
		return -EPROTO;
	if (c->kind == PLSEG_KIND_MQ && ((c->idx | peer_idx) % PLMQ_ALIGN))
		return -EPROTO;
	c->hb = ld64(&me->heartbeat) + 1;
	st64(&me->heartbeat, c->hb);
	st32(&me->pid, (uint32_t)getpid());
	st32(&me->port, c->seg->info.port);
	st32(&me->sleeping, 0);
	st32(&me->closed, 0);
	st64(&me->owner, c->token);
	if (c->kind == PLSEG_KIND_PIPE) {
		st64(c->role == PLSEG_WRITER ? &c->q->desc.w_token :
					       &c->q->desc.r_token, c->token);
		c->session = ld64(&c->q->desc.session);
	}
	return 0;
}

int plchan_attach(struct plchan *c, struct plseg *seg, int kind,
		  unsigned int qidx, int role,
		  const struct plseg_chan_opts *opts)
{
	struct verdict mine = { 0, 0 }, other = { 0, 0 };
	int timeout = opts ? opts->timeout_ms : 0;
	int64_t deadline = timeout > 0 ? now_ms() + timeout : -1;
	struct lock lk;
	uint64_t owner, tok;
	int err, v, d;

	memset(c, 0, sizeof(*c));
	c->seg = seg;
	c->kind = kind;
	c->role = role;
	c->qidx = qidx;
	c->spin_us = PLSEG_SPIN_US_DEFAULT;
	if (opts && opts->spin_us > 0)
		c->spin_us = opts->spin_us;
	/* spinning does not bump the heartbeat */
	if (c->spin_us > PLSEG_SPIN_US_MAX)
		c->spin_us = PLSEG_SPIN_US_MAX;
	if (opts && opts->no_spin)
		c->spin_us = 0;
	if (opts)
		c->cancel = opts->cancel;
	if (kind != PLSEG_KIND_PIPE && kind != PLSEG_KIND_MQ)
		return -EINVAL;
	if (role != PLSEG_WRITER && role != PLSEG_READER)
		return -EINVAL;
	if (seg->rdonly)
		return -EROFS;
	if (seg->size < PLSEG_HEADER_SIZE)
		return -ENOSPC;
	c->token = new_token();

	for (;;) {
		err = ctl_lock(seg, &lk);
		if (err)
			return err;
		if (lk.init) {
			err = layout_init(seg, kind);
			if (err) {
				/* as it was: the next opener tries again */
				st64(&hdr(seg)->ctl.ctl, 0);
				return err;
			}
		}
		err = layout_check(c, kind, qidx);
		if (err)
			goto unlock;

		owner = ld64(&c->me->owner);
		if (owner && mine.token != owner) {
			ctl_unlock(seg, &lk);
			v = judge(c, c->me, owner);
			if (v < 0)
				return v;
			mine.token = v == V_CHANGED ? 0 : owner;
			mine.v = v;
			continue;
		}
		if (owner && mine.v == V_ALIVE) {
			if (opts && opts->holder) {
				opts->holder->pid = ld32(&c->me->pid);
				opts->holder->port = ld32(&c->me->port);
			}
			err = -EBUSY;
			goto unlock;
		}

		d = kind == PLSEG_KIND_PIPE ? pipe_decide(c, &other, &tok) :
					      D_JOIN;
		if (d == D_JUDGE) {
			ctl_unlock(seg, &lk);
			v = judge(c, c->peer, tok);
			if (v < 0)
				return v;
			other.token = v == V_CHANGED ? 0 : tok;
			other.v = v;
			continue;
		}
		if (d == D_WAIT) {
			ctl_unlock(seg, &lk);
			if (deadline >= 0 && now_ms() >= deadline)
				return -ETIMEDOUT;
			if (cancelled(c))
				return -EINTR;
			plseg_heartbeat_all(seg);
			plseg_sleep_us(10000);
			other.token = 0;	/* look again */
			continue;
		}
		if (d == D_RESET)
			pipe_reset(c);
		err = join(c);
		if (err)
			goto unlock;
		err = ctl_unlock(seg, &lk);
		if (err) {
			end_clear(c->me);
			return err;
		}
		err = plseg_add_chan(seg, c);
		if (err) {
			c->attached = true;
			plchan_detach(c, false);
			return err;
		}
		c->attached = true;
		return 0;
	}
unlock:
	ctl_unlock(seg, &lk);
	return err;
}

static void wake_peer(struct plchan *c)
{
	full_fence();
	/* look before the exchange: no write to the peer's line if awake */
	if (ld32(&c->peer->sleeping) && xchg32(&c->peer->sleeping, 0)) {
		uint32_t port = ld32(&c->peer->port);

		/* a local peer that polls, since the device refuses */
		if (port == c->seg->info.port && c->seg->self_ring < 0)
			return;
		plseg_ring(c->seg, port);
		c->stats.rings++;
	}
}

void plchan_detach(struct plchan *c, bool end_stream)
{
	struct plseg *seg = c->seg;
	struct lock lk;

	if (!c->attached)
		return;
	c->attached = false;
	plseg_del_chan(seg, c);
	if (plseg_is_revoked(seg) || ctl_lock(seg, &lk))
		return;
	if (ld64(&c->me->owner) == c->token &&
	    (c->kind != PLSEG_KIND_PIPE ||
	     ld64(&c->q->desc.session) == c->session)) {
		if (c->kind == PLSEG_KIND_PIPE &&
		    (c->role == PLSEG_READER || (end_stream && !c->broken)))
			st32(&c->me->closed, 1);
		end_clear(c->me);
		wake_peer(c);
	}
	ctl_unlock(seg, &lk);
}

void plchan_heartbeat(struct plchan *c)
{
	if (c->attached)
		__atomic_store_n(&c->me->heartbeat, ++c->hb, __ATOMIC_RELAXED);
}

void plchan_publish(struct plchan *c)
{
	st64(&c->me->index, c->idx);
	plchan_heartbeat(c);
	wake_peer(c);
}

void plchan_end_stream(struct plchan *c)
{
	st32(&c->me->closed, 1);
	wake_peer(c);
}

int plchan_usable(struct plchan *c, int role)
{
	if (!c->attached || c->role != role)
		return -EINVAL;
	if (c->broken)
		return plseg_is_revoked(c->seg) ? -ENODEV : c->err;
	return 0;
}

int plchan_peer_index(struct plchan *c, uint64_t *out)
{
	uint64_t p = ld64(&c->peer->index);
	uint64_t used = c->role == PLSEG_WRITER ? c->idx - p : p - c->idx;

	if (used > c->ring_size ||
	    (c->kind == PLSEG_KIND_MQ && p % PLMQ_ALIGN))
		return -EPROTO;
	*out = p;
	return 0;
}

/* Errors that end the stream; a revoked segment explains the others. */
int plchan_fail(struct plchan *c, int err)
{
	switch (err) {
	case -EPROTO:
		if (plseg_check(c->seg) == -ENODEV)
			err = -ENODEV;
		/* fall through */
	case -EPIPE:
	case -ESTALE:
	case -ENODEV:
		c->broken = true;
		break;
	default:
		break;
	}
	if (plseg_is_revoked(c->seg)) {
		c->broken = true;
		err = -ENODEV;
	}
	if (c->broken && !c->err)
		c->err = err;
	return err;
}

/* Still the owner of our end, in our session? */
int plchan_check_self(struct plchan *c)
{
	if (ld64(&c->me->owner) != c->token)
		return -ESTALE;
	if (c->kind == PLSEG_KIND_PIPE &&
	    ld64(&c->q->desc.session) != c->session)
		return -ESTALE;
	return 0;
}

/* The endpoint we expect on the other side: 0 while there is none. */
static uint64_t peer_token(struct plchan *c)
{
	if (c->kind == PLSEG_KIND_MQ)
		return ld64(&c->peer->owner);
	return ld64(c->role == PLSEG_READER ? &c->q->desc.w_token :
					      &c->q->desc.r_token);
}

static void clear_dead_peer(struct plchan *c, uint64_t token)
{
	struct lock lk;

	if (ctl_lock(c->seg, &lk))
		return;
	if (ld64(&c->peer->owner) == token)
		end_clear(c->peer);
	ctl_unlock(c->seg, &lk);
}

/* While waiting: 0 if the peer is alive or not there yet, or -EPIPE. */
static int peer_alive(struct plchan *c)
{
	uint64_t expect = peer_token(c), owner, hb;
	int64_t t;

	if (!expect)
		return 0;
	owner = ld64(&c->peer->owner);
	if (owner == expect && ld32(&c->peer->pid)) {
		c->last_peer.pid = ld32(&c->peer->pid);
		c->last_peer.port = ld32(&c->peer->port);
	}
	if (c->kind == PLSEG_KIND_PIPE) {
		if (ld32(&c->peer->closed))
			return 0;	/* the condition decides */
		if (owner != expect)
			return -EPIPE;	/* gone without a word */
	}
	hb = ld64(&c->peer->heartbeat);
	t = now_ms();
	if (c->obs_token != expect || c->obs_hb != hb) {
		c->obs_token = expect;
		c->obs_hb = hb;
		c->obs_ms = t;
		return 0;
	}
	if (t - c->obs_ms < PLSEG_STALE_MS)
		return 0;
	clear_dead_peer(c, expect);
	return -EPIPE;
}

/*
 * How long to sleep on the doorbell.  A peer in our own partition can
 * wake us only if the driver lets a port ring itself; the device refuses
 * (ESRCH), so find out once, and poll every millisecond if not.
 */
static int sleep_slice(struct plchan *c)
{
	struct plseg *seg = c->seg;

	if (seg->ops || seg->host_mode || !ld64(&c->peer->owner) ||
	    ld32(&c->peer->port) != seg->info.port)
		return PLSEG_HEARTBEAT_MS;
	if (!seg->self_ring)
		seg->self_ring = plseg_ring(seg, seg->info.port) ? -1 : 1;
	return seg->self_ring > 0 ? PLSEG_HEARTBEAT_MS : PLSEG_LOCAL_POLL_MS;
}

static int cond_result(int r)
{
	return r > 0 ? 0 : r;
}

/*
 * Wait until cond(c) says ready: spin for spin_us, then sleep on the
 * doorbell with the sleeping flag up, at most PLSEG_HEARTBEAT_MS at a
 * time, bumping our heartbeats and watching the peer's on every wakeup.
 */
int plchan_wait(struct plchan *c, plchan_cond cond, int timeout_ms)
{
	int64_t start, deadline = -1, left;
	int r, slice;

	r = cond(c);
	if (r)
		return cond_result(r);
	if (timeout_ms == 0)
		return -EAGAIN;
	start = now_ns();
	if (timeout_ms > 0)
		deadline = start / 1000000 + timeout_ms;
	while (now_ns() - start < (int64_t)c->spin_us * 1000) {
		unsigned int i;

		for (i = 0; i < 16; i++)
			cpu_relax();
		r = cond(c);
		if (r)
			return cond_result(r);
	}
	for (;;) {
		st32(&c->me->sleeping, 1);
		full_fence();
		r = cond(c);
		if (r)
			break;
		r = peer_alive(c);
		if (r)
			break;
		if (cancelled(c)) {
			r = -EINTR;
			break;
		}
		slice = sleep_slice(c);
		if (deadline >= 0) {
			left = deadline - now_ms();
			if (left <= 0) {
				r = -ETIMEDOUT;
				break;
			}
			if (left < slice)
				slice = (int)left;
		}
		c->stats.sleeps++;
		r = plseg_wait(c->seg, slice);
		if (r < 0)
			break;
		if (r > 0)
			c->stats.wakeups++;
		plseg_heartbeat_all(c->seg);
		if (plseg_is_revoked(c->seg)) {
			r = -ENODEV;
			break;
		}
		r = plchan_check_self(c);
		if (r)
			break;
	}
	st32(&c->me->sleeping, 0);
	return cond_result(r);
}

int plchan_peer(const struct plchan *c, struct plseg_peer *peer)
{
	*peer = c->last_peer;
	if (!c->attached)
		return 0;
	if (ld64(&c->peer->owner)) {
		peer->pid = ld32(&c->peer->pid);
		peer->port = ld32(&c->peer->port);
	}
	return 0;
}

/* Administration */

static const char *phase_name(uint64_t ctl)
{
	static const char *const names[] = { "empty", "init", "ready", "busy" };

	return names[ctl & PLSEG_CTL_PHASE_MASK];
}

int plseg_layout_describe(struct plseg *seg, char *buf, size_t len)
{
	struct plseg_header *h = hdr(seg);
	uint64_t ctl = ld64(&h->ctl.ctl);
	uint32_t magic = h->id.magic, nq = h->id.nqueues, i;
	size_t n = 0;

#define OUT(...)                                                        \
	do {                                                            \
		int k_ = snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__); \
		if (k_ > 0)                                             \
			n += (size_t)k_;                                \
	} while (0)

	if (seg->size < PLSEG_HEADER_SIZE) {
		OUT("segment of %zu bytes: too small for a header\n", seg->size);
		return 0;
	}
	OUT("segment: %zu bytes, ctl %s (seq %llu, last holder pid %u port %u)\n",
	    seg->size, phase_name(ctl),
	    (unsigned long long)(ctl >> PLSEG_CTL_SEQ_SHIFT),
	    h->ctl.holder_pid, h->ctl.holder_port);
	if (ctl == 0) {
		OUT("layout: none yet (the first opener initializes it)\n");
		return 0;
	}
	if (magic != PLSEG_MAGIC) {
		OUT("layout: bad magic 0x%08x (want 0x%08x)\n", magic,
		    PLSEG_MAGIC);
		return 0;
	}
	OUT("layout: version %u, kind %s, %u queue(s), header %u bytes\n",
	    h->id.version, h->id.kind == PLSEG_KIND_PIPE ? "pipe" :
			   h->id.kind == PLSEG_KIND_MQ ? "mq" : "?",
	    nq, h->id.header_size);
	for (i = 0; i < nq && i < PLSEG_MAX_QUEUES; i++) {
		struct plseg_queue *q = &h->q[i];
		const struct plseg_end *e[2] = { &q->w, &q->r };
		int j;

		OUT("queue %u: ring at %llu, %llu bytes, max message %u, session %llu, %llu bytes queued\n",
		    i, (unsigned long long)q->desc.ring_offset,
		    (unsigned long long)q->desc.ring_size, q->desc.max_msg,
		    (unsigned long long)q->desc.session,
		    (unsigned long long)(q->w.index - q->r.index));
		for (j = 0; j < 2; j++)
			OUT("  %s: %s pid %u port %u, index %llu, heartbeat %llu%s%s\n",
			    j ? "reader" : "writer",
			    e[j]->owner ? "attached," : "none; last",
			    e[j]->pid, e[j]->port,
			    (unsigned long long)e[j]->index,
			    (unsigned long long)e[j]->heartbeat,
			    e[j]->sleeping ? ", sleeping" : "",
			    e[j]->closed ? ", closed" : "");
	}
#undef OUT
	return 0;
}

int plseg_layout_reset(struct plseg *seg, int force)
{
	struct plseg_header *h = hdr(seg);
	uint64_t owner[2 * PLSEG_MAX_QUEUES], hb[2 * PLSEG_MAX_QUEUES];
	unsigned int i, n = 0;
	struct lock lk;
	int64_t t0;

	if (seg->rdonly)
		return -EROFS;
	if (seg->size < PLSEG_HEADER_SIZE)
		return -ENOSPC;
	if (!force && h->id.magic == PLSEG_MAGIC) {
		for (i = 0; i < PLSEG_MAX_QUEUES; i++) {
			owner[n] = ld64(&h->q[i].w.owner);
			hb[n++] = ld64(&h->q[i].w.heartbeat);
			owner[n] = ld64(&h->q[i].r.owner);
			hb[n++] = ld64(&h->q[i].r.heartbeat);
		}
		t0 = now_ms();
		while (now_ms() - t0 < PLSEG_STALE_MS + 200) {
			plseg_sleep_us(10000);
			for (i = 0; i < n; i++) {
				uint64_t *p = i % 2 ? &h->q[i / 2].r.heartbeat :
						      &h->q[i / 2].w.heartbeat;

				if (owner[i] && ld64(p) != hb[i])
					return -EBUSY;
			}
		}
	}
	/* keep openers out while we clear; zeroing ctl lets them in again */
	if (!force && ctl_lock(seg, &lk) == -ENODEV)
		return -ENODEV;
	memset(&h->id, 0, sizeof(h->id));
	memset(h->reserved, 0, sizeof(h->reserved));
	memset(h->q, 0, sizeof(h->q));
	h->ctl.holder_pid = 0;
	h->ctl.holder_port = 0;
	full_fence();
	st64(&h->ctl.ctl, 0);
	return plseg_is_revoked(seg) ? -ENODEV : 0;
}
