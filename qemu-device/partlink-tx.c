/*
 * partlink-pci: the data path
 *
 * The device's TX thread takes the packets its driver queued, finds each
 * destination by MAC among the peers it may reach, takes the
 * destination's RX lock, claims enough posted RX buffers and copies the
 * packet once, from the sender's RAM into the destination's RAM.
 *
 * The thread runs outside the BQL, so neither this guest's vCPUs nor its
 * main loop ever wait for a peer.  It sleeps on the TX_KICK ioeventfd
 * only when the ring is empty and says so in the notify area; while it
 * works, or lingers a little after a batch, the driver does not ring.
 * Interrupts are raised only when armed (struct partlink_notify in the
 * ABI header): a peer's once per round that delivered to it, our own for
 * TX completions when the thread goes idle or drains the ring.
 *
 * Every descriptor is read once into a local copy and checked there; the
 * guest may rewrite its rings at any moment without effect on what the
 * device does with the copy.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"
#include "qemu/log.h"
#include "qemu/timer.h"
#include "trace.h"
#include "partlink.h"

/* A descriptor as the device uses it: host byte order, checked. */
typedef struct PartlinkDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t gso_size;
    uint8_t gso_type;
    uint8_t hdr_len;
    uint32_t reserved;
    uint8_t *host;              /* after translation */
} PartlinkDesc;

typedef struct PartlinkPacket {
    unsigned nr;                /* ring entries it took */
    PartlinkDesc seg[PARTLINK_MAX_SEGS];
    uint32_t len;
    uint8_t eth[12];            /* destination and source, read once */
} PartlinkPacket;

#define ETH_ALEN_ 6
#define PARTLINK_BUSY_BACKOFF_NS (100 * SCALE_MS)

/* Read entry @e once; false if the device does not own it. */
static bool partlink_desc_read(const uint8_t *e, PartlinkDesc *d)
{
    uint16_t flags = le16_to_cpu(qatomic_load_acquire((uint16_t *)(e + 12)));

    if (!(flags & PARTLINK_DESC_OWN)) {
        return false;
    }
    d->addr = ldq_le_p(e);
    d->len = ldl_le_p(e + 8);
    d->flags = flags;
    d->csum_start = lduw_le_p(e + 16);
    d->csum_offset = lduw_le_p(e + 18);
    d->gso_size = lduw_le_p(e + 20);
    d->gso_type = e[22];
    d->hdr_len = e[23];
    d->reserved = ldl_le_p(e + 24);
    d->host = NULL;
    return true;
}

/* Hand an entry back: its fields first, OWN clear last. */
static void partlink_desc_complete(uint8_t *e, const PartlinkDesc *d,
                                   uint16_t status)
{
    stl_le_p(e + 8, d->len);
    stw_le_p(e + 14, status);
    stw_le_p(e + 16, d->csum_start);
    stw_le_p(e + 18, d->csum_offset);
    stw_le_p(e + 20, d->gso_size);
    e[22] = d->gso_type;
    e[23] = d->hdr_len;
    qatomic_store_release((uint16_t *)(e + 12),
                          cpu_to_le16(d->flags & ~PARTLINK_DESC_OWN));
}

static bool partlink_gso_type_valid(uint8_t type)
{
    switch (type & ~PARTLINK_GSO_ECN) {
    case PARTLINK_GSO_NONE:
        return !(type & PARTLINK_GSO_ECN);
    case PARTLINK_GSO_TCPV4:
    case PARTLINK_GSO_UDP:
    case PARTLINK_GSO_TCPV6:
    case PARTLINK_GSO_UDP_L4:
        return true;
    default:
        return false;
    }
}

static uint16_t partlink_offload_check(PartlinkState *s,
                                       const PartlinkPacket *p)
{
    const PartlinkDesc *d = &p->seg[0];

    if (d->flags & PARTLINK_DESC_NEEDS_CSUM) {
        if (!(s->drv_features & PARTLINK_F_CSUM) ||
            d->csum_start > p->len ||
            d->csum_offset > p->len - d->csum_start ||
            p->len - d->csum_start - d->csum_offset < 2) {
            return PARTLINK_ST_BAD_DESC;
        }
    }
    if ((d->flags & PARTLINK_DESC_DATA_VALID) &&
        !(s->drv_features & PARTLINK_F_CSUM)) {
        return PARTLINK_ST_BAD_DESC;
    }
    if (!partlink_gso_type_valid(d->gso_type)) {
        return PARTLINK_ST_BAD_DESC;
    }
    if (d->gso_type != PARTLINK_GSO_NONE &&
        (!(s->drv_features & PARTLINK_F_GSO) || d->gso_size == 0 ||
         !(d->flags & PARTLINK_DESC_NEEDS_CSUM))) {
        return PARTLINK_ST_BAD_DESC;
    }
    return PARTLINK_ST_OK;
}

/* Check a gathered packet against our own RAM and the rules of the spec. */
static uint16_t partlink_tx_check(PartlinkState *s, PartlinkPacket *p)
{
    uint64_t total = 0;
    unsigned i;

    for (i = 0; i < p->nr; i++) {
        PartlinkDesc *d = &p->seg[i];

        if (d->reserved || (d->flags & ~PARTLINK_DESC_TX_FLAGS) ||
            (i > 0 && (d->flags & (PARTLINK_DESC_NEEDS_CSUM |
                                   PARTLINK_DESC_DATA_VALID)))) {
            return PARTLINK_ST_BAD_DESC;
        }
        if (d->len == 0 || d->len > PARTLINK_MAX_PACKET) {
            return PARTLINK_ST_BAD_LEN;
        }
        d->host = partlink_ram_translate(&s->ram, d->addr, d->len);
        if (!d->host) {
            return PARTLINK_ST_BAD_ADDR;
        }
        total += d->len;
    }
    if (p->seg[p->nr - 1].flags & PARTLINK_DESC_MORE) {
        return PARTLINK_ST_BAD_DESC;        /* chain longer than allowed */
    }
    if (total > PARTLINK_MAX_PACKET || p->seg[0].len < PARTLINK_MIN_PACKET) {
        return PARTLINK_ST_BAD_LEN;
    }
    p->len = total;
    memcpy(p->eth, p->seg[0].host, sizeof(p->eth));
    if (memcmp(p->eth + ETH_ALEN_, s->mac.a, ETH_ALEN_)) {
        return PARTLINK_ST_SPOOFED;
    }
    return partlink_offload_check(s, p);
}

/*
 * Claim RX entries of @port for @len bytes, starting at its head.  Bad
 * entries the destination posted are handed back with an error status
 * and skipped.  Returns how many entries the packet takes, 0 if there
 * is no room.
 */
static unsigned partlink_rx_claim(struct partlink_fabric_port *port,
                                  PartlinkPeer *peer, uint8_t *ring,
                                  uint32_t mask, uint32_t len,
                                  PartlinkDesc *rx, uint32_t *head)
{
    uint64_t ring_gpa = port->rx_ring_gpa;
    uint64_t ring_len = (uint64_t)(mask + 1) * PARTLINK_DESC_SIZE;
    uint32_t need = len;
    unsigned nr = 0, skipped = 0;

    /*
     * However many bad entries the destination posts, skip only a few;
     * and never come round to an entry this claim already took.
     */
    while (need && skipped < PARTLINK_RX_SKIP_MAX && nr + skipped <= mask) {
        uint8_t *e = ring + ((*head + nr) & mask) * PARTLINK_DESC_SIZE;
        PartlinkDesc *d = &rx[nr];
        uint16_t st = PARTLINK_ST_OK;

        if (!partlink_desc_read(e, d)) {
            return 0;
        }
        if (d->len < PARTLINK_RX_BUF_MIN || d->len > PARTLINK_MAX_PACKET) {
            st = PARTLINK_ST_BAD_LEN;
        } else {
            d->host = partlink_ram_translate(&peer->ram, d->addr, d->len);
            /* A buffer over the ring would let a packet forge entries. */
            if (!d->host || (d->addr < ring_gpa + ring_len &&
                             ring_gpa < d->addr + d->len)) {
                st = PARTLINK_ST_BAD_ADDR;
            }
        }
        if (st != PARTLINK_ST_OK) {
            if (nr) {
                return 0;   /* only a chain's first entry may be skipped */
            }
            d->len = 0;
            d->flags = 0;
            partlink_desc_complete(e, d, st);
            qatomic_add(&port->counters[PARTLINK_CTR_RX_BAD_BUFFER], 1);
            qatomic_add(&port->counters[PARTLINK_CTR_BAD_DESCRIPTORS], 1);
            (*head)++;
            skipped++;
            continue;
        }
        d->len = MIN(d->len, need);
        need -= d->len;
        if (++nr == PARTLINK_MAX_SEGS && need) {
            return 0;
        }
    }
    return need ? 0 : nr;
}

/*
 * The previous holder of the lock died while handing entries back: some
 * of the chain may be back with the driver, the head entry not.  Hand
 * the whole chain back as errors, which the driver drops and re-posts.
 */
static void partlink_rx_repair(struct partlink_fabric_port *port,
                               uint8_t *ring, uint32_t mask)
{
    uint32_t n = MIN(port->rx_claimed, PARTLINK_MAX_SEGS);
    PartlinkDesc d = { 0 };
    uint32_t i;

    for (i = n; i-- > 0;) {
        partlink_desc_complete(ring + ((port->rx_head + i) & mask) *
                               PARTLINK_DESC_SIZE, &d, PARTLINK_ST_BAD_DESC);
    }
    qatomic_set(&port->rx_head, port->rx_head + n);
    qatomic_set(&port->rx_claimed, 0);
    qatomic_add(&port->counters[PARTLINK_CTR_RX_BAD_BUFFER], n);
    trace_partlink_rx_repaired(n);
}

/* The one copy: source segments into destination buffers. */
static void partlink_copy(const PartlinkPacket *p, PartlinkDesc *rx,
                          unsigned nr_rx)
{
    unsigned si = 0, di = 0;
    uint32_t soff = sizeof(p->eth), doff = sizeof(p->eth);

    /* The addresses that were checked, not what the guest has now. */
    memcpy(rx[0].host, p->eth, sizeof(p->eth));
    while (si < p->nr && di < nr_rx) {
        uint32_t n = MIN(p->seg[si].len - soff, rx[di].len - doff);

        memcpy(rx[di].host + doff, p->seg[si].host + soff, n);
        soff += n;
        doff += n;
        if (soff == p->seg[si].len) {
            si++;
            soff = 0;
        }
        if (doff == rx[di].len) {
            di++;
            doff = 0;
        }
    }
}

/*
 * A destination whose RX lock stayed busy past the sender's bounded wait
 * is skipped for a while: a holder that is stopped (SIGSTOP, a debugger)
 * costs this thread one wait per window, not one per packet.
 */
static bool partlink_peer_busy(PartlinkPeer *peer)
{
    if (!peer->busy_until) {
        return false;
    }
    if (qemu_clock_get_ns(QEMU_CLOCK_REALTIME) < peer->busy_until) {
        return true;
    }
    peer->busy_until = 0;
    return false;
}

static uint16_t partlink_deliver(PartlinkState *s, const PartlinkPacket *p,
                                 uint32_t port_nr)
{
    PartlinkPeer *peer = &s->peers[port_nr];
    struct partlink_fabric_port *port = partlink_fabric_port(s, port_nr);
    const PartlinkDesc *first = &p->seg[0];
    PartlinkDesc rx[PARTLINK_MAX_SEGS];
    uint32_t want = 0, size, mask, head;
    uint16_t st = PARTLINK_ST_OK;
    unsigned nr, i;
    uint8_t *ring;

    if (!port) {
        return PARTLINK_ST_NO_ROUTE;
    }
    if (partlink_peer_busy(peer) ||
        !partlink_port_lock(port, PARTLINK_LOCK_BOUNDED)) {
        if (!peer->busy_until) {
            peer->busy_until = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                               PARTLINK_BUSY_BACKOFF_NS;
            trace_partlink_lock_busy(s->port_id, port_nr);
        }
        qatomic_add(&port->counters[PARTLINK_CTR_RX_NO_BUFFER], 1);
        return PARTLINK_ST_NO_BUFFER;
    }
    /* The slot, not our peer table, is the truth; the main loop drops it. */
    if (!partlink_peer_valid(s, port_nr)) {
        partlink_port_unlock(port);
        qemu_bh_schedule(s->peer_check);
        return PARTLINK_ST_NO_ROUTE;
    }
    if (first->flags & (PARTLINK_DESC_NEEDS_CSUM | PARTLINK_DESC_DATA_VALID)) {
        want |= PARTLINK_F_CSUM;
    }
    if (first->gso_type != PARTLINK_GSO_NONE) {
        want |= PARTLINK_F_GSO;
    }
    size = port->rx_ring_size;
    if (!port->rx_ready || !is_power_of_2(size) || size > PARTLINK_RING_MAX) {
        st = PARTLINK_ST_NO_BUFFER;
        goto out;
    }
    if ((port->rx_features & want) != want) {
        st = PARTLINK_ST_NO_OFFLOAD;
        goto out;
    }
    mask = size - 1;
    ring = partlink_ram_translate(&peer->ram, port->rx_ring_gpa,
                                  (uint64_t)size * PARTLINK_DESC_SIZE);
    if (ring && port->rx_claimed) {
        partlink_rx_repair(port, ring, mask);
    }
    head = port->rx_head;
    nr = ring ? partlink_rx_claim(port, peer, ring, mask, p->len, rx, &head)
              : 0;
    qatomic_set(&port->rx_head, head);
    if (!nr) {
        st = PARTLINK_ST_NO_BUFFER;
        goto out;
    }
    partlink_copy(p, rx, nr);
    for (i = 0; i < nr; i++) {
        rx[i].flags = i + 1 < nr ? PARTLINK_DESC_MORE : 0;
        rx[i].csum_start = rx[i].csum_offset = rx[i].gso_size = 0;
        rx[i].gso_type = rx[i].hdr_len = 0;
    }
    rx[0].flags |= first->flags & (PARTLINK_DESC_NEEDS_CSUM |
                                   PARTLINK_DESC_DATA_VALID);
    rx[0].csum_start = first->csum_start;
    rx[0].csum_offset = first->csum_offset;
    rx[0].gso_size = first->gso_size;
    rx[0].gso_type = first->gso_type;
    rx[0].hdr_len = first->hdr_len;
    /* Last entry first: a driver that owns the head owns the chain. */
    qatomic_set(&port->rx_claimed, nr);
    for (i = nr; i-- > 0;) {
        partlink_desc_complete(ring + ((head + i) & mask) * PARTLINK_DESC_SIZE,
                               &rx[i], PARTLINK_ST_OK);
    }
    qatomic_set(&port->rx_head, head + nr);
    qatomic_set(&port->rx_claimed, 0);
    qatomic_add(&port->counters[PARTLINK_CTR_RX_PACKETS], 1);
    qatomic_add(&port->counters[PARTLINK_CTR_RX_BYTES], p->len);
    partlink_count(s, PARTLINK_CTR_COPIES, 1);
    partlink_count(s, PARTLINK_CTR_BYTES_COPIED, p->len);
    s->tx_notify_due |= 1ULL << port_nr;
out:
    if (st == PARTLINK_ST_NO_BUFFER) {
        qatomic_add(&port->counters[PARTLINK_CTR_RX_NO_BUFFER], 1);
    }
    partlink_port_unlock(port);
    trace_partlink_deliver(s->port_id, port_nr, p->len, st);
    return st;
}

/*
 * The peers this round delivered to get one interrupt each, if their
 * driver armed one.  The address comes from the peer's slot and is
 * checked against the peer's RAM like any other address it gave; and
 * under the peer's RX lock, with its ring still published: once its
 * driver has reset the device, the notify area may be freed memory.
 */
static void partlink_notify_peers(PartlinkState *s)
{
    QEMU_BUILD_BUG_ON(PARTLINK_FABRIC_PORTS > 64);

    while (s->tx_notify_due) {
        unsigned i = ctz64(s->tx_notify_due);
        PartlinkPeer *peer = &s->peers[i];
        struct partlink_fabric_port *port = partlink_fabric_port(s, i);
        uint32_t *armed = NULL;
        bool raise;
        uint64_t gpa;

        s->tx_notify_due &= s->tx_notify_due - 1;
        if (!partlink_port_lock(port, PARTLINK_LOCK_BOUNDED)) {
            continue;   /* stuck: its holder interrupts it after its copy */
        }
        gpa = port->notify_gpa;
        if (port->rx_ready && partlink_peer_valid(s, i) &&
            !(gpa % PARTLINK_RING_ALIGN)) {
            armed = partlink_ram_translate(&peer->ram,
                                           gpa + PARTLINK_NOTIFY_IRQ_ARMED,
                                           sizeof(*armed));
        }
        /* The exchange orders the entries we handed back before it. */
        raise = armed && qatomic_xchg(armed, 0);
        partlink_port_unlock(port);
        if (raise) {
            uint64_t one = 1;

            if (write(peer->doorbell_fd, &one, sizeof(one)) < 0 &&
                errno != EAGAIN) {
                trace_partlink_kick_failed(i, errno);
            }
        }
    }
}

static uint16_t partlink_route(PartlinkState *s, const PartlinkPacket *p,
                               bool on_fabric)
{
    uint16_t st = PARTLINK_ST_NO_ROUTE;
    unsigned i;

    if (!on_fabric) {
        return PARTLINK_ST_LINK_DOWN;
    }
    if (!(p->eth[0] & 1)) {
        for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
            if (s->peers[i].present &&
                !memcmp(s->peers[i].mac.a, p->eth, ETH_ALEN_)) {
                return partlink_deliver(s, p, i);
            }
        }
        return PARTLINK_ST_NO_ROUTE;
    }
    /* Broadcast and multicast: one copy to every peer; one is enough. */
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        if (s->peers[i].present) {
            uint16_t one = partlink_deliver(s, p, i);

            if (st != PARTLINK_ST_OK) {
                st = one;
            }
        }
    }
    return st;
}

static void partlink_tx_count(PartlinkState *s, const PartlinkPacket *p,
                              uint16_t st)
{
    static const unsigned error_counter[] = {
        [PARTLINK_ST_BAD_ADDR] = PARTLINK_CTR_BAD_DESCRIPTORS,
        [PARTLINK_ST_BAD_LEN] = PARTLINK_CTR_BAD_DESCRIPTORS,
        [PARTLINK_ST_BAD_DESC] = PARTLINK_CTR_BAD_DESCRIPTORS,
        [PARTLINK_ST_SPOOFED] = PARTLINK_CTR_SPOOFED,
        [PARTLINK_ST_NO_ROUTE] = PARTLINK_CTR_NO_ROUTE,
        [PARTLINK_ST_NO_BUFFER] = PARTLINK_CTR_TX_NO_BUFFER,
        [PARTLINK_ST_NO_OFFLOAD] = PARTLINK_CTR_TX_ERRORS,
        [PARTLINK_ST_LINK_DOWN] = PARTLINK_CTR_TX_ERRORS,
    };

    if (st == PARTLINK_ST_OK) {
        partlink_count(s, PARTLINK_CTR_TX_PACKETS, 1);
        partlink_count(s, PARTLINK_CTR_TX_BYTES, p->len);
        return;
    }
    if (error_counter[st] != PARTLINK_CTR_TX_ERRORS) {
        partlink_count(s, error_counter[st], 1);
    }
    partlink_count(s, PARTLINK_CTR_TX_ERRORS, 1);
    if (error_counter[st] == PARTLINK_CTR_BAD_DESCRIPTORS ||
        st == PARTLINK_ST_SPOOFED) {
        qemu_log_mask(LOG_GUEST_ERROR, "partlink: TX descriptor refused, "
                      "status %u\n", st);
    }
}

/*
 * Gather the next packet at the TX position.  Returns false when the
 * driver has not finished handing it over (its first entry, or a later
 * one of its chain, is not ours yet).
 */
static bool partlink_tx_gather(PartlinkState *s, PartlinkPacket *p)
{
    uint32_t mask = s->tx_ring_size - 1;

    p->len = 0;
    for (p->nr = 0; p->nr < PARTLINK_MAX_SEGS; p->nr++) {
        const uint8_t *e = s->tx_ring +
            ((s->tx_pos + p->nr) & mask) * PARTLINK_DESC_SIZE;
        PartlinkDesc *d = &p->seg[p->nr];

        if (p->nr > mask) {
            return true;    /* a chain around the whole ring */
        }
        if (!partlink_desc_read(e, d)) {
            return false;
        }
        if (!(d->flags & PARTLINK_DESC_MORE)) {
            p->nr++;
            return true;
        }
    }
    /* Too long a chain: refuse what we took, the check will say so. */
    return true;
}

/* Called with tx_lock held. */
static bool partlink_tx_live(PartlinkState *s)
{
    return (s->status & PARTLINK_STATUS_DRIVER_OK) && s->tx_ring &&
           s->notify && s->bus_master;
}

/* Does the driver own the entry at the TX position?  With tx_lock held. */
static bool partlink_tx_pending(PartlinkState *s)
{
    const uint8_t *e;

    if (!partlink_tx_live(s)) {
        return false;
    }
    e = s->tx_ring + (s->tx_pos & (s->tx_ring_size - 1)) * PARTLINK_DESC_SIZE;
    return le16_to_cpu(qatomic_load_acquire((uint16_t *)(e + 12))) &
           PARTLINK_DESC_OWN;
}

/* As vring_need_event(): did old..new pass the driver's event index? */
static bool partlink_need_event(uint32_t event, uint32_t new, uint32_t old)
{
    return (uint32_t)(new - event - 1) < (uint32_t)(new - old);
}

/*
 * Interrupt the driver for what we handed back since the last time, if
 * it asked for it (tx_event) and armed the vector.  When the thread goes
 * idle, and after a round that drained the ring if the last interrupt
 * is tx-irq-gap-us old: the driver reclaims from start_xmit too, so a
 * flood needs few of these, but a TCP sender held back by its small
 * queues (TSQ) waits for them.
 */
static void partlink_tx_interrupt(PartlinkState *s)
{
    uint32_t event;

    if (s->tx_irq_pos == s->tx_pos) {
        return;
    }
    /* The entries handed back before the driver's event index is read. */
    smp_mb();
    event = le32_to_cpu(qatomic_read(&s->notify->tx_event));
    if (partlink_need_event(event, s->tx_pos, s->tx_irq_pos) &&
        qatomic_xchg(&s->notify->irq_armed, 0)) {
        event_notifier_set(&s->doorbell);
        s->tx_irq_time = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    }
    s->tx_irq_pos = s->tx_pos;
}

/*
 * One round: up to a budget of entries and bytes.  Returns true if the
 * ring has more for the next round.
 */
static bool partlink_tx_round(PartlinkState *s, bool *worked)
{
    uint32_t entries = PARTLINK_TX_BUDGET_ENTRIES;
    uint32_t bytes = PARTLINK_TX_BUDGET_BYTES;
    uint32_t mask, old;
    bool on_fabric, more;
    PartlinkPacket p;

    QEMU_LOCK_GUARD(&s->tx_lock);
    if (!partlink_tx_live(s)) {
        return false;
    }
    mask = s->tx_ring_size - 1;
    old = s->tx_pos;
    /* Once per round, not per packet: is our fabric slot still ours? */
    on_fabric = partlink_fabric_slot_valid(s);
    while (entries && bytes && partlink_tx_gather(s, &p)) {
        uint16_t st = partlink_tx_check(s, &p);
        unsigned i;

        if (st == PARTLINK_ST_OK) {
            st = partlink_route(s, &p, on_fabric);
        }
        trace_partlink_tx(s->port_id, p.nr, p.len, st);
        partlink_tx_count(s, &p, st);
        for (i = 0; i < p.nr; i++) {
            partlink_desc_complete(s->tx_ring + ((s->tx_pos + i) & mask) *
                                   PARTLINK_DESC_SIZE, &p.seg[i], st);
        }
        s->tx_pos += p.nr;
        entries -= MIN(entries, p.nr);
        bytes -= MIN(bytes, p.len);
    }
    if (s->tx_pos == old) {
        return false;
    }
    *worked = true;
    partlink_notify_peers(s);
    qatomic_store_release(&s->notify->tx_done, cpu_to_le32(s->tx_pos));
    more = partlink_tx_pending(s);
    if (!more && qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - s->tx_irq_time >=
        (int64_t)s->tx_irq_gap_us * SCALE_US) {
        partlink_tx_interrupt(s);
    }
    trace_partlink_tx_round(s->port_id, s->tx_pos - old, more);
    return more;
}

/*
 * Tell the driver to ring, then look at the ring once more: it may have
 * queued a packet before it could see the flag.  Returns true if the
 * thread may sleep.
 */
static bool partlink_tx_may_sleep(PartlinkState *s)
{
    QEMU_LOCK_GUARD(&s->tx_lock);
    if (!partlink_tx_live(s)) {
        return true;
    }
    partlink_tx_interrupt(s);
    qatomic_set(&s->notify->tx_kick, cpu_to_le32(1));
    /* Pairs with the driver's barrier between its OWN store and its read. */
    smp_mb();
    if (!partlink_tx_pending(s)) {
        return true;
    }
    qatomic_set(&s->notify->tx_kick, 0);
    return false;
}

static void partlink_tx_awake(PartlinkState *s)
{
    QEMU_LOCK_GUARD(&s->tx_lock);
    if (partlink_tx_live(s)) {
        qatomic_set(&s->notify->tx_kick, 0);
    }
}

/* Wait for a doorbell, or @linger_ns if not negative; count doorbells. */
static void partlink_tx_wait(PartlinkState *s, int64_t linger_ns)
{
    struct pollfd fds[] = {
        { .fd = event_notifier_get_fd(&s->tx_kick), .events = POLLIN },
        { .fd = event_notifier_get_fd(&s->tx_wake), .events = POLLIN },
    };
    struct timespec ts = {
        .tv_sec = linger_ns / NANOSECONDS_PER_SECOND,
        .tv_nsec = linger_ns % NANOSECONDS_PER_SECOND,
    };
    uint64_t kicks;

    if (ppoll(fds, ARRAY_SIZE(fds), linger_ns < 0 ? NULL : &ts, NULL) <= 0) {
        return;
    }
    if (read(fds[0].fd, &kicks, sizeof(kicks)) == sizeof(kicks)) {
        partlink_count(s, PARTLINK_CTR_TX_KICKS, kicks);
    }
    event_notifier_test_and_clear(&s->tx_wake);
}

static void *partlink_tx_thread(void *opaque)
{
    PartlinkState *s = opaque;
    int64_t linger_ns = (int64_t)s->tx_linger_us * SCALE_US;
    bool worked = false;

    while (!qatomic_read(&s->tx_stop)) {
        if (worked && linger_ns) {
            /*
             * After a batch, more tends to follow: look again shortly
             * instead of asking the driver for a doorbell per packet.
             */
            partlink_tx_wait(s, linger_ns);
        } else if (partlink_tx_may_sleep(s)) {
            partlink_tx_wait(s, -1);
            partlink_tx_awake(s);
        }
        worked = false;
        while (partlink_tx_round(s, &worked) &&
               !qatomic_read(&s->tx_stop)) {
            /* more than a budget's worth: the next round at once */
        }
    }
    return NULL;
}

/* Make the thread look at the ring: after DRIVER_OK or bus mastering. */
void partlink_tx_wake(PartlinkState *s)
{
    if (s->tx_thread_running) {
        event_notifier_set(&s->tx_wake);
    }
}

void partlink_tx_realize(PartlinkState *s, Error **errp)
{
    int ret;

    qemu_mutex_init(&s->tx_lock);
    ret = event_notifier_init(&s->tx_kick, false);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "partlink-pci: cannot create TX doorbell");
        return;
    }
    ret = event_notifier_init(&s->tx_wake, false);
    if (ret < 0) {
        event_notifier_cleanup(&s->tx_kick);
        error_setg_errno(errp, -ret, "partlink-pci: cannot create TX wakeup");
        return;
    }
    /* Under KVM the doorbell never leaves the kernel; TCG emulates it. */
    memory_region_add_eventfd(&s->regs, PARTLINK_REG_TX_KICK, 4, false, 0,
                              &s->tx_kick);
    s->tx_stop = false;
    qemu_thread_create(&s->tx_thread, "partlink-tx", partlink_tx_thread, s,
                       QEMU_THREAD_JOINABLE);
    s->tx_thread_running = true;
}

void partlink_tx_unrealize(PartlinkState *s)
{
    if (!s->tx_thread_running) {
        return;
    }
    qatomic_set(&s->tx_stop, true);
    event_notifier_set(&s->tx_wake);
    qemu_thread_join(&s->tx_thread);
    s->tx_thread_running = false;
    memory_region_del_eventfd(&s->regs, PARTLINK_REG_TX_KICK, 4, false, 0,
                              &s->tx_kick);
    event_notifier_cleanup(&s->tx_wake);
    event_notifier_cleanup(&s->tx_kick);
    qemu_mutex_destroy(&s->tx_lock);
}
