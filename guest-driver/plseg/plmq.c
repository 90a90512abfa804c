// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * libplseg: message queues.  Two queues per segment; records of an 8-byte
 * header and a payload, 8-byte aligned, never split by the ring's end (a
 * PAD record fills the rest of the ring instead).  docs/spec.md section
 * 17, "Message queues".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plseg_int.h"

static uint64_t rec_size(uint64_t len)
{
	return PLMQ_REC_HDR + ((len + PLMQ_ALIGN - 1) & ~(uint64_t)(PLMQ_ALIGN - 1));
}

int plmq_attach(struct plseg *seg, unsigned int queue, enum plseg_role role,
		const struct plseg_chan_opts *opts, struct plmq **out)
{
	struct plmq *q;
	int err;

	if (queue >= PLSEG_MQ_QUEUES)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	err = plchan_attach(&q->c, seg, PLSEG_KIND_MQ, queue, role, opts);
	if (err) {
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

static int room_for_want(struct plchan *c)
{
	uint64_t tail;
	int r = plchan_peer_index(c, &tail);

	if (r)
		return r;
	return c->ring_size - (c->idx - tail) >= c->want;
}

static void put_hdr(struct plchan *c, uint64_t off, uint32_t len,
		    uint32_t type)
{
	struct plseg_rec *h = (struct plseg_rec *)(c->ring + off);

	__atomic_store_n(&h->len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&h->type, type, __ATOMIC_RELAXED);
}

static int put(struct plchan *c, uint32_t type, const void *msg, size_t len,
	       int timeout_ms)
{
	uint64_t rec = rec_size(len), off, contig;
	int r;

	r = plchan_usable(c, PLSEG_WRITER);
	if (r)
		return r;
	if (len > c->max_msg)
		return -EMSGSIZE;
	plchan_heartbeat(c);
	for (;;) {
		off = c->idx % c->ring_size;
		contig = c->ring_size - off;
		/* a record that does not fit before the end: pad first */
		c->want = rec > contig ? contig : rec;
		r = plchan_wait(c, room_for_want, timeout_ms);
		if (r)
			return plchan_fail(c, r);
		if (rec > contig) {
			put_hdr(c, off, (uint32_t)(contig - PLMQ_REC_HDR),
				PLMQ_REC_PAD);
			c->idx += contig;
			plchan_publish(c);
			continue;
		}
		put_hdr(c, off, (uint32_t)len, type);
		if (len)
			memcpy(c->ring + off + PLMQ_REC_HDR, msg, len);
		if (plseg_is_revoked(c->seg))
			return plchan_fail(c, -ENODEV);
		c->idx += rec;
		plchan_publish(c);
		return 0;
	}
}

int plmq_send(struct plmq *q, const void *msg, size_t len, int timeout_ms)
{
	return put(&q->c, PLMQ_REC_MSG, msg, len, timeout_ms);
}

int plmq_send_end(struct plmq *q, int timeout_ms)
{
	return put(&q->c, PLMQ_REC_END, NULL, 0, timeout_ms);
}

static int has_record(struct plchan *c)
{
	uint64_t head;
	int r = plchan_peer_index(c, &head);

	if (r)
		return r;
	return head != c->idx;
}

int plmq_recv(struct plmq *q, void *buf, size_t cap, size_t *len,
	      int timeout_ms)
{
	struct plchan *c = &q->c;
	uint64_t head, avail, off, contig, rec;
	const struct plseg_rec *h;
	uint32_t rlen, type;
	int r;

	r = plchan_usable(c, PLSEG_READER);
	if (r)
		return r;
	plchan_heartbeat(c);
	for (;;) {
		r = plchan_wait(c, has_record, timeout_ms);
		if (r)
			return plchan_fail(c, r);
		r = plchan_peer_index(c, &head);
		if (r)
			return plchan_fail(c, r);
		/* both indices are multiples of 8 and differ: avail >= 8 */
		avail = head - c->idx;
		off = c->idx % c->ring_size;
		contig = c->ring_size - off;
		h = (const struct plseg_rec *)(c->ring + off);
		/* each read once: the peer may change them under us */
		rlen = __atomic_load_n(&h->len, __ATOMIC_RELAXED);
		type = __atomic_load_n(&h->type, __ATOMIC_RELAXED);
		if (plseg_is_revoked(c->seg))
			return plchan_fail(c, -ENODEV);
		switch (type) {
		case PLMQ_REC_PAD:
			if (rlen != contig - PLMQ_REC_HDR || contig > avail)
				return plchan_fail(c, -EPROTO);
			c->idx += contig;
			plchan_publish(c);
			continue;
		case PLMQ_REC_END:
			if (rlen)
				return plchan_fail(c, -EPROTO);
			c->idx += PLMQ_REC_HDR;
			plchan_publish(c);
			return PLMQ_END;
		case PLMQ_REC_MSG:
			rec = rec_size(rlen);
			if (rlen > c->max_msg || rec > contig || rec > avail)
				return plchan_fail(c, -EPROTO);
			*len = rlen;
			if (rlen > cap)
				return -EMSGSIZE;	/* stays queued */
			if (rlen)
				memcpy(buf, c->ring + off + PLMQ_REC_HDR, rlen);
			if (plseg_is_revoked(c->seg))
				return plchan_fail(c, -ENODEV);
			c->idx += rec;
			plchan_publish(c);
			return 0;
		default:
			return plchan_fail(c, -EPROTO);
		}
	}
}

void plmq_close(struct plmq *q)
{
	if (!q)
		return;
	plchan_detach(&q->c, false);
	free(q);
}

void plmq_heartbeat(struct plmq *q)
{
	plchan_heartbeat(&q->c);
}

size_t plmq_max_msg(const struct plmq *q)
{
	return q->c.max_msg;
}

void plmq_stats(const struct plmq *q, struct plseg_stats *st)
{
	*st = q->c.stats;
}

int plmq_peer(const struct plmq *q, struct plseg_peer *peer)
{
	return plchan_peer(&q->c, peer);
}
