/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * plseg on-segment layout, version 1: a byte pipe or a message queue in a
 * partlink shared segment.  docs/spec.md section 17 says the same in prose, for programs
 * in other languages; change both together and bump PLSEG_VERSION on any
 * incompatible change.
 *
 * All fields are little-endian and naturally aligned.  Offsets are from the
 * start of the segment.  "Line" means a 64-byte cache line; the lines two
 * sides write are 128 bytes apart, so that the adjacent-line prefetcher of
 * x86 does not make them share either.
 *
 *   0x0000  id line      magic, version, kind, sizes: written once, at init
 *   0x0040  ctl line     the state and lock word (compare-and-swap)
 *   0x0080  reserved     zero
 *   0x0200  queue 0      a 512-byte block, see below
 *   0x0400  queue 1      (message queues only)
 *   ...     reserved up to header_size (4096)
 *   4096    ring of queue 0, then ring of queue 1 (page-aligned)
 *
 * A pipe has one queue; a message queue has two: queue 0 carries the
 * traffic ("plmq send" writes it, "plmq recv" reads it), queue 1 the way
 * back (ping/pong replies).  Each queue has one writer and one reader.
 *
 * Queue block (512 bytes, at 0x200 + 0x200 * q):
 *
 *   +0x000  desc line    geometry (set at init) and the pipe session
 *   +0x080  writer line  written by the writer: head, heartbeat, ...
 *   +0x100  reader line  written by the reader: tail, heartbeat, ...
 *
 * Indices are free-running 64-bit byte counts: head is how many bytes the
 * writer has published since the session began, tail how many the reader
 * has consumed; the byte at index i lives at ring_offset + i % ring_size.
 * 0 <= head - tail <= ring_size always.  The writer stores head with
 * release semantics after writing the bytes; the reader loads it with
 * acquire semantics before reading them (and the reverse for tail).
 *
 * Sleeping and doorbells (a Dekker handshake): a side that finds nothing
 * to do spins a few microseconds, then stores 1 in its own "sleeping",
 * issues a full fence, looks at the other index again, and only then
 * waits for the doorbell, at most PLSEG_HEARTBEAT_MS.  The other side,
 * after storing its index, issues a full fence and atomically exchanges
 * the sleeper's "sleeping" with 0; if it was 1, it rings the sleeper's
 * port.  One of the two always sees the other's store.
 *
 * Liveness: each endpoint's line has an owner token (random, non-zero;
 * 0: no endpoint), its pid and partition port, and a heartbeat counter it
 * increments on every operation and at least every PLSEG_HEARTBEAT_MS
 * while attached (it never blocks longer than that).  A side waiting on
 * its peer declares the peer gone when the heartbeat has not moved for
 * PLSEG_STALE_MS.
 *
 * The ctl word: bits 1..0 the phase, bits 63..2 a sequence number that
 * every transition increments.  EMPTY (the whole word 0: a new, zeroed
 * segment), INIT (one opener is writing the layout), READY, BUSY (one
 * endpoint is attaching or detaching: a short critical section in which
 * the owners, tokens and session are changed; never held while waiting).
 * The first opener moves 0 -> INIT with a compare-and-swap, writes the id
 * line and queue descriptors, and stores READY with release semantics.
 * Anyone may take READY -> BUSY by compare-and-swap and must return it to
 * READY (compare-and-swap from its own BUSY word).  A word stuck in INIT
 * or BUSY for PLSEG_STALE_MS belongs to a process that died inside the
 * section: the next opener takes it over with a compare-and-swap (INIT:
 * it initializes again; BUSY: it goes on, the section's stores being
 * idempotent).  The data path never touches the ctl word.
 *
 * Attaching (under BUSY): a role whose owner is non-zero is judged: its
 * heartbeat watched, unlocked, until it moves (alive: the attach fails
 * with EBUSY) or PLSEG_STALE_MS pass (dead: its place is taken).  A pipe
 * carries one stream per session; the desc line's w_token/r_token say
 * which endpoints joined it.  A writer joins a session no writer has
 * joined; a reader one no reader has joined, unless its writer left it
 * unfinished (owner != w_token without "closed") or died.  Otherwise the
 * session is reset (session + 1, tokens, indices and flags 0, the other
 * role's line cleared) if the other role has no live endpoint, or the
 * attacher waits for that endpoint to finish.  So whoever comes next
 * reinitializes a segment left by dead users (no live process can be
 * using the ring then), a reader never inherits half of a dead writer's
 * stream, and an ended stream waits for a reader that comes before the
 * next writer.  Message queues have no sessions: messages stay queued,
 * and a writer killed inside a record never published it.
 *
 * Never trust the segment: read the id line and the queue geometry once
 * under the lock and check them (magic, version, kind, header_size 4096,
 * nqueues, seg_size == the mapping's size, ring_offset and ring_size
 * multiples of 4096 inside the segment, max_msg <= ring_size - 8); keep
 * your own index privately; check the peer's index on every read
 * (head - tail <= ring_size, unsigned; mq: multiples of 8); read a
 * record's len and type once and check them (PAD: exactly to the ring's
 * end; MSG: len <= max_msg, the record inside both the ring's end and
 * head; END: len 0).  A failed check is a bad layout.
 */
#ifndef PLSEG_LAYOUT_H
#define PLSEG_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define PLSEG_MAGIC		0x47534c50u	/* "PLSG" */
#define PLSEG_VERSION		1
#define PLSEG_KIND_PIPE		1
#define PLSEG_KIND_MQ		2

#define PLSEG_HEADER_SIZE	4096	/* and the ring granule */
#define PLSEG_QUEUE_BASE	0x200
#define PLSEG_QUEUE_STRIDE	0x200
#define PLSEG_MAX_QUEUES	7
#define PLSEG_PIPE_QUEUES	1
#define PLSEG_MQ_QUEUES		2

/* ctl word */
#define PLSEG_CTL_PHASE_MASK	3u
#define PLSEG_CTL_EMPTY		0u
#define PLSEG_CTL_INIT		1u
#define PLSEG_CTL_READY		2u
#define PLSEG_CTL_BUSY		3u
#define PLSEG_CTL_SEQ_SHIFT	2

/* Timing every implementation must honour. */
#define PLSEG_HEARTBEAT_MS	100	/* longest wait without a bump */
#define PLSEG_STALE_MS		2000	/* no bump for this long: gone */

/*
 * Message queue records, 8-byte aligned, never split by the end of the
 * ring: a record that does not fit before the end is preceded by a PAD
 * record that fills the rest of the ring.  len is the payload length;
 * the record occupies 8 + len rounded up to 8 bytes.
 */
#define PLMQ_REC_MSG		1	/* len bytes of payload follow */
#define PLMQ_REC_PAD		2	/* len == bytes to the ring's end - 8 */
#define PLMQ_REC_END		3	/* end of stream, len == 0 */
#define PLMQ_REC_HDR		8
#define PLMQ_ALIGN		8

struct plseg_rec {
	uint32_t len;
	uint32_t type;
};

/* 0x000: written by the initializer only */
struct plseg_id {
	uint32_t magic;		/* PLSEG_MAGIC */
	uint16_t version;	/* PLSEG_VERSION */
	uint16_t kind;		/* PLSEG_KIND_* */
	uint32_t header_size;	/* 4096: where the rings may begin */
	uint32_t nqueues;	/* 1 (pipe) or 2 (mq) */
	uint64_t seg_size;	/* the segment's size, bytes */
	uint8_t reserved[40];
};

/* 0x040 */
struct plseg_ctl {
	uint64_t ctl;		/* phase | seq << 2 */
	uint32_t holder_pid;	/* diagnostics: the last INIT/BUSY holder */
	uint32_t holder_port;
	uint8_t reserved[48];
};

/* queue block + 0x000: geometry from init; session fields under BUSY */
struct plseg_qdesc {
	uint64_t ring_offset;	/* from the segment's start, 4096-aligned */
	uint64_t ring_size;	/* bytes, a multiple of 4096 */
	uint32_t max_msg;	/* mq: largest payload; pipe: 0 */
	uint32_t flags;		/* 0 */
	uint64_t session;	/* pipe: incremented by every reset */
	uint64_t w_token;	/* pipe: the writer that joined this session */
	uint64_t r_token;	/* pipe: the reader that joined this session */
	uint8_t reserved[16];
};

/* queue block + 0x080 (writer) and + 0x100 (reader) */
struct plseg_end {
	uint64_t index;		/* writer: head; reader: tail */
	uint64_t heartbeat;	/* bumped while attached */
	uint64_t owner;		/* token of the attached endpoint, 0: none */
	uint32_t pid;		/* its process, in its partition */
	uint32_t port;		/* its partition's port */
	uint32_t sleeping;	/* 1: waiting for a doorbell */
	uint32_t closed;	/* pipe writer: end of stream; reader: gone */
	uint8_t reserved[24];
};

struct plseg_queue {
	struct plseg_qdesc desc;	/* +0x000 */
	uint8_t pad0[64];
	struct plseg_end w;		/* +0x080 */
	uint8_t pad1[64];
	struct plseg_end r;		/* +0x100 */
	uint8_t pad2[192];
};

struct plseg_header {
	struct plseg_id id;		/* 0x000 */
	struct plseg_ctl ctl;		/* 0x040 */
	uint8_t reserved[0x180];	/* 0x080 */
	struct plseg_queue q[PLSEG_MAX_QUEUES];	/* 0x200 */
};

static_assert(sizeof(struct plseg_id) == 64, "id line");
static_assert(sizeof(struct plseg_ctl) == 64, "ctl line");
static_assert(sizeof(struct plseg_qdesc) == 64, "desc line");
static_assert(sizeof(struct plseg_end) == 64, "endpoint line");
static_assert(sizeof(struct plseg_queue) == PLSEG_QUEUE_STRIDE, "queue");
static_assert(offsetof(struct plseg_queue, w) == 0x80, "writer line");
static_assert(offsetof(struct plseg_queue, r) == 0x100, "reader line");
static_assert(offsetof(struct plseg_header, ctl) == 0x40, "ctl line");
static_assert(offsetof(struct plseg_header, q) == PLSEG_QUEUE_BASE, "queues");
static_assert(sizeof(struct plseg_header) == PLSEG_HEADER_SIZE, "header");

#endif /* PLSEG_LAYOUT_H */
