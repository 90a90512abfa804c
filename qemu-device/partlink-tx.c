/*
 * partlink-pci: the data path
 *
 * On a TX kick the sender's device takes the packets its driver queued,
 * finds each destination by MAC among the peers it may reach, takes the
 * destination's RX lock, claims enough posted RX buffers and copies the
 * packet once, from the sender's RAM into the destination's RAM.  It all
 * runs in the sender's vCPU thread, inside the write to TX_KICK: a guest
 * that floods doorbells spends its own CPU time.
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
#include "qemu/bswap.h"
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
    unsigned nr = 0, scanned;

    for (scanned = 0; scanned <= mask && need; scanned++) {
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
    port->rx_head += n;
    port->rx_claimed = 0;
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
    /*
     * Busy for too long: drop as if the ring were full, and do not wait
     * on this port again for a while, so that a stuck holder costs this
     * vCPU one wait, not one per packet.
     */
    if ((peer->busy_until &&
         qemu_clock_get_ns(QEMU_CLOCK_REALTIME) < peer->busy_until) ||
        !partlink_port_lock(port, true)) {
        if (!peer->busy_until) {
            peer->busy_until = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                               PARTLINK_BUSY_BACKOFF_NS;
        }
        qatomic_add(&port->counters[PARTLINK_CTR_RX_NO_BUFFER], 1);
        trace_partlink_lock_busy(s->port_id, port_nr);
        return PARTLINK_ST_NO_BUFFER;
    }
    peer->busy_until = 0;
    if (port->state != PARTLINK_PORT_UP || port->epoch != peer->epoch) {
        partlink_port_unlock(port);
        partlink_drop_peer(s, port_nr);
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
    port->rx_head = head;
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
    port->rx_claimed = nr;
    for (i = nr; i-- > 0;) {
        partlink_desc_complete(ring + ((head + i) & mask) * PARTLINK_DESC_SIZE,
                               &rx[i], PARTLINK_ST_OK);
    }
    port->rx_head = head + nr;
    port->rx_claimed = 0;
    qatomic_add(&port->counters[PARTLINK_CTR_RX_PACKETS], 1);
    qatomic_add(&port->counters[PARTLINK_CTR_RX_BYTES], p->len);
    partlink_count(s, PARTLINK_CTR_COPIES, 1);
    partlink_count(s, PARTLINK_CTR_BYTES_COPIED, p->len);
out:
    if (st == PARTLINK_ST_NO_BUFFER) {
        qatomic_add(&port->counters[PARTLINK_CTR_RX_NO_BUFFER], 1);
    }
    partlink_port_unlock(port);
    trace_partlink_deliver(s->port_id, port_nr, p->len, st);
    if (st == PARTLINK_ST_OK) {
        /* Pairs with partlink_fabric_set_rx_notify(). */
        smp_mb();
        if (qatomic_read(&port->rx_notify)) {
            uint64_t one = 1;

            if (write(peer->doorbell_fd, &one, sizeof(one)) < 0 &&
                errno != EAGAIN) {
                trace_partlink_kick_failed(port_nr, errno);
            }
        }
    }
    return st;
}

static uint16_t partlink_route(PartlinkState *s, const PartlinkPacket *p)
{
    uint16_t st = PARTLINK_ST_NO_ROUTE;
    unsigned i;

    if (!s->registered) {
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

void partlink_tx_kick(PartlinkState *s)
{
    uint32_t budget = s->tx_ring_size;
    uint32_t mask = s->tx_ring_size - 1;
    PartlinkPacket p;

    partlink_count(s, PARTLINK_CTR_TX_KICKS, 1);
    if (!(s->status & PARTLINK_STATUS_DRIVER_OK) || !s->tx_ring) {
        return;
    }
    /* Once per kick, not per packet: is our fabric slot still ours? */
    partlink_fabric_owns_slot(s);
    while (budget && partlink_tx_gather(s, &p)) {
        uint16_t st = partlink_tx_check(s, &p);
        unsigned i;

        if (st == PARTLINK_ST_OK) {
            st = partlink_route(s, &p);
        }
        trace_partlink_tx(s->port_id, p.nr, p.len, st);
        partlink_tx_count(s, &p, st);
        for (i = 0; i < p.nr; i++) {
            partlink_desc_complete(s->tx_ring + ((s->tx_pos + i) & mask) *
                                   PARTLINK_DESC_SIZE, &p.seg[i], st);
        }
        s->tx_pos += p.nr;
        budget -= MIN(budget, p.nr);
    }
}
