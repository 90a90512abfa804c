// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * libplseg: a byte pipe in a segment.  One queue; head and tail count
 * bytes; the writer's "closed" flag ends the stream, the reader's says it
 * left.  docs/spec.md section 17, "Pipes".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plseg_int.h"

int plpipe_attach(struct plseg *seg, enum plseg_role role,
		  const struct plseg_chan_opts *opts, struct plpipe **out)
{
	struct plpipe *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = plchan_attach(&p->c, seg, PLSEG_KIND_PIPE, 0, role, opts);
	if (err) {
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

/* Copy between the ring and a buffer, across the ring's end. */
static void ring_copy_out(const struct plchan *c, void *dst, uint64_t idx,
			  size_t n)
{
	size_t off = (size_t)(idx % c->ring_size);
	size_t first = c->ring_size - off < n ? c->ring_size - off : n;

	memcpy(dst, c->ring + off, first);
	memcpy((char *)dst + first, c->ring, n - first);
}

static void ring_copy_in(struct plchan *c, uint64_t idx, const void *src,
			 size_t n)
{
	size_t off = (size_t)(idx % c->ring_size);
	size_t first = c->ring_size - off < n ? c->ring_size - off : n;

	memcpy(c->ring + off, src, first);
	memcpy(c->ring, (const char *)src + first, n - first);
}

static int can_read(struct plchan *c)
{
	uint64_t head;
	int r = plchan_peer_index(c, &head);

	if (r)
		return r;
	return head != c->idx || ld32(&c->peer->closed);
}

ssize_t plpipe_read(struct plpipe *p, void *buf, size_t cap, int timeout_ms)
{
	struct plchan *c = &p->c;
	uint64_t head, avail;
	uint32_t closed;
	int r;

	r = plchan_usable(c, PLSEG_READER);
	if (r)
		return r;
	if (!cap)
		return -EINVAL;
	plchan_heartbeat(c);
	for (;;) {
		r = plchan_wait(c, can_read, timeout_ms);
		if (r)
			return plchan_fail(c, r);
		/* the flag first: head is final once it is set */
		closed = ld32(&c->peer->closed);
		r = plchan_peer_index(c, &head);
		if (r)
			return plchan_fail(c, r);
		if (head != c->idx)
			break;
		if (closed)
			return plseg_is_revoked(c->seg) ?
				       plchan_fail(c, -ENODEV) : 0;
	}
	avail = head - c->idx;
	if (avail > cap)
		avail = cap;
	if (avail > PLSEG_PUBLISH_CHUNK)
		avail = PLSEG_PUBLISH_CHUNK;
	ring_copy_out(c, buf, c->idx, (size_t)avail);
	if (plseg_is_revoked(c->seg))
		return plchan_fail(c, -ENODEV);
	c->idx += avail;
	plchan_publish(c);
	return (ssize_t)avail;
}

static int can_write(struct plchan *c)
{
	uint64_t tail;
	int r = plchan_peer_index(c, &tail);

	if (r)
		return r;
	if (ld32(&c->peer->closed))
		return -EPIPE;	/* the reader left */
	return c->idx - tail < c->ring_size;
}

ssize_t plpipe_write(struct plpipe *p, const void *buf, size_t len,
		     int timeout_ms)
{
	struct plchan *c = &p->c;
	uint64_t tail, room;
	int r;

	r = plchan_usable(c, PLSEG_WRITER);
	if (r)
		return r;
	if (c->ended)
		return -EINVAL;
	if (!len)
		return 0;
	plchan_heartbeat(c);
	r = plchan_wait(c, can_write, timeout_ms);
	if (r)
		return plchan_fail(c, r);
	r = plchan_peer_index(c, &tail);
	if (r)
		return plchan_fail(c, r);
	room = c->ring_size - (c->idx - tail);
	if (room > len)
		room = len;
	if (room > PLSEG_PUBLISH_CHUNK)
		room = PLSEG_PUBLISH_CHUNK;
	ring_copy_in(c, c->idx, buf, (size_t)room);
	if (plseg_is_revoked(c->seg))
		return plchan_fail(c, -ENODEV);
	c->idx += room;
	plchan_publish(c);
	return (ssize_t)room;
}

int plpipe_write_all(struct plpipe *p, const void *buf, size_t len,
		     int timeout_ms)
{
	const char *b = buf;

	while (len) {
		ssize_t n = plpipe_write(p, b, len, timeout_ms);

		if (n < 0)
			return (int)n;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int drained(struct plchan *c)
{
	uint64_t tail;
	int r = plchan_peer_index(c, &tail);

	if (r)
		return r;
	if (tail == c->idx)
		return 1;
	return ld32(&c->peer->closed) ? -EPIPE : 0;
}

int plpipe_finish(struct plpipe *p, int timeout_ms)
{
	struct plchan *c = &p->c;
	int r;

	r = plchan_usable(c, PLSEG_WRITER);
	if (r)
		return r;
	if (!c->ended) {
		c->ended = true;
		plchan_end_stream(c);
	}
	r = plchan_wait(c, drained, timeout_ms);
	if (!r && plseg_is_revoked(c->seg))
		r = -ENODEV;
	return r ? plchan_fail(c, r) : 0;
}

void plpipe_close(struct plpipe *p)
{
	if (!p)
		return;
	plchan_detach(&p->c, true);
	free(p);
}

void plpipe_abort(struct plpipe *p)
{
	if (!p)
		return;
	plchan_detach(&p->c, false);
	free(p);
}

void plpipe_heartbeat(struct plpipe *p)
{
	plchan_heartbeat(&p->c);
}

size_t plpipe_capacity(const struct plpipe *p)
{
	return (size_t)p->c.ring_size;
}

void plpipe_stats(const struct plpipe *p, struct plseg_stats *st)
{
	*st = p->c.stats;
}

int plpipe_peer(const struct plpipe *p, struct plseg_peer *peer)
{
	return plchan_peer(&p->c, peer);
}
