/*
 * partlink-pci: the fabric protocol with partlinkd
 *
 * The device registers with partlinkd over a unix-socket chardev, handing
 * over its RAM and doorbell fds; partlinkd answers with the fabric segment
 * and, for each peer this port may reach, the peer's RAM and doorbell.
 * After that the data path runs between the devices alone: when partlinkd
 * goes away nothing stops, and the chardev's reconnect re-registers.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <pthread.h>
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "hw/pci/msix.h"
#include "system/system.h"
#include "trace.h"
#include "partlink.h"

QEMU_BUILD_BUG_ON(sizeof(pthread_mutex_t) > PARTLINK_LOCK_SIZE);

#define PARTLINK_LOCK_WAIT_NS (2 * SCALE_MS)
#define PARTLINK_RX_SYNC_RETRY_MS 2

struct partlink_fabric_port *partlink_fabric_port(PartlinkState *s,
                                                  uint32_t port)
{
    if (!s->fabric || port >= PARTLINK_FABRIC_PORTS) {
        return NULL;
    }
    return &s->fabric->ports[port];
}

/*
 * A sender that died holding the lock leaves the port's RX ring as it
 * was before its packet: the ring head only moves after a whole copy.
 * Senders, and the device under the BQL, wait at most
 * PARTLINK_LOCK_WAIT_NS: a holder that is stopped (SIGSTOP, a debugger)
 * must not stall every sender to the port, nor this VM.
 */
bool partlink_port_lock(struct partlink_fabric_port *port,
                        PartlinkLockWait wait)
{
    pthread_mutex_t *m = (pthread_mutex_t *)port->rx_lock;
    struct timespec deadline;
    int ret;

    /* Uncontended, the common case: no clock read, no wait. */
    ret = pthread_mutex_trylock(m);
    if (ret == EBUSY && wait == PARTLINK_LOCK_BOUNDED) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += PARTLINK_LOCK_WAIT_NS;
        if (deadline.tv_nsec >= NANOSECONDS_PER_SECOND) {
            deadline.tv_sec++;
            deadline.tv_nsec -= NANOSECONDS_PER_SECOND;
        }
        ret = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &deadline);
    } else if (ret == EBUSY && wait == PARTLINK_LOCK_WAIT) {
        ret = pthread_mutex_lock(m);
    }

    if (ret == EOWNERDEAD) {
        trace_partlink_lock_recovered(port->name);
        pthread_mutex_consistent(m);
        return true;
    }
    return ret == 0;
}

void partlink_port_unlock(struct partlink_fabric_port *port)
{
    pthread_mutex_unlock((pthread_mutex_t *)port->rx_lock);
}

unsigned partlink_nr_peers(PartlinkState *s)
{
    unsigned i, n = 0;

    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        n += s->peers[i].present;
    }
    return n;
}

/*
 * Our slot is ours while partlinkd keeps it UP with our epoch for this
 * process.  When our connection drops, partlinkd frees it, and another
 * QEMU may take the port: from then on we must not write into it.
 */
static bool partlink_slot_is_ours(PartlinkState *s,
                                  struct partlink_fabric_port *port)
{
    return port->state == PARTLINK_PORT_UP && port->epoch == s->epoch &&
           port->pid == getpid();
}

static void partlink_unregister(PartlinkState *s)
{
    s->registered = false;
    s->counters = s->local_counters;
    partlink_link_changed(s);
}

/* For the TX thread: the same test, without acting on it. */
bool partlink_fabric_slot_valid(PartlinkState *s)
{
    struct partlink_fabric_port *port = partlink_fabric_port(s, s->port_id);

    return s->registered && port && partlink_slot_is_ours(s, port);
}

bool partlink_fabric_owns_slot(PartlinkState *s)
{
    struct partlink_fabric_port *port = partlink_fabric_port(s, s->port_id);

    if (s->registered && port && !partlink_slot_is_ours(s, port)) {
        partlink_unregister(s);
    }
    return s->registered;
}

static bool partlink_rx_ready(PartlinkState *s)
{
    return (s->status & PARTLINK_STATUS_DRIVER_OK) && s->bus_master;
}

/* STATUS's RESETTING: the driver may not free its buffers yet. */
bool partlink_fabric_rx_resetting(PartlinkState *s)
{
    return s->rx_sync_pending && !partlink_rx_ready(s);
}

/*
 * With our lock held by a sender stopped in the middle of a copy (SIGSTOP,
 * a debugger), do not wait for it here, under the BQL: close the ring to
 * new senders at once (they check rx_ready under the lock), and finish
 * from a timer once the holder lets go or dies.
 */
static bool partlink_rx_sync_lock(PartlinkState *s,
                                  struct partlink_fabric_port *port,
                                  bool retry)
{
    if (partlink_port_lock(port, retry ? PARTLINK_LOCK_TRY
                                       : PARTLINK_LOCK_BOUNDED)) {
        s->rx_sync_pending = false;
        timer_del(s->rx_sync_timer);
        return true;
    }
    qatomic_set(&port->rx_ready, 0);
    qatomic_set(&port->notify_gpa, 0);
    if (!s->rx_sync_pending) {
        trace_partlink_rx_sync_pending(s->port_id);
    }
    s->rx_sync_pending = true;
    timer_mod(s->rx_sync_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                                PARTLINK_RX_SYNC_RETRY_MS);
    return false;
}

/*
 * Tell senders where our RX ring is, or that there is none.  Under our
 * own lock, so that once the driver resets the device no sender writes
 * into buffers the driver is about to free.  The RX head starts at 0
 * only for a ring senders have not filled yet; republishing the same
 * ring (a new epoch, a new fabric) keeps the driver's position.
 */
static void partlink_rx_sync(PartlinkState *s, bool retry)
{
    struct partlink_fabric_port *port = partlink_fabric_port(s, s->port_id);
    bool ready = partlink_rx_ready(s);

    if (!s->registered || !port) {
        s->rx_sync_pending = false;
        timer_del(s->rx_sync_timer);
        return;
    }
    if (!partlink_rx_sync_lock(s, port, retry)) {
        return;
    }
    if (!partlink_slot_is_ours(s, port)) {
        partlink_port_unlock(port);
        partlink_unregister(s);
        return;
    }
    port->rx_ready = 0;
    port->notify_gpa = 0;
    if (ready) {
        if (!s->rx_published) {
            port->rx_head = 0;
        } else if (s->rx_head_saved) {
            port->rx_head = s->rx_head;
        }
        s->rx_head_saved = false;
        s->rx_published = true;
        port->rx_claimed = 0;
        port->rx_ring_gpa = s->rx_ring_gpa;
        port->rx_ring_size = s->rx_ring_size;
        port->rx_features = s->drv_features;
        port->notify_gpa = s->notify_gpa;
        port->rx_ready = 1;
    }
    partlink_port_unlock(port);
}

static void partlink_rx_sync_retry(void *opaque)
{
    PartlinkState *s = opaque;

    WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
        partlink_rx_sync(s, true);
    }
}

void partlink_fabric_publish_rx(PartlinkState *s)
{
    partlink_rx_sync(s, false);
}

/* Leave a fabric: close our slot in it and remember where senders were. */
static void partlink_fabric_leave(PartlinkState *s)
{
    struct partlink_fabric_port *port = partlink_fabric_port(s, s->port_id);
    unsigned i;

    if (s->registered && port && partlink_port_lock(port, PARTLINK_LOCK_WAIT)) {
        if (partlink_slot_is_ours(s, port)) {
            port->rx_ready = 0;
            port->notify_gpa = 0;
            s->rx_head = port->rx_head;
            s->rx_head_saved = true;
        }
        partlink_port_unlock(port);
    }
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        partlink_drop_peer(s, i);
    }
    s->counters = s->local_counters;
    s->registered = false;
    munmap(s->fabric, sizeof(*s->fabric));
    s->fabric = NULL;
}

/*
 * A peer may be reached while its slot is UP with the epoch we mapped and
 * in our network: partlinkd may have moved it since (a restart with a new
 * configuration), or given the port to another QEMU.
 */
bool partlink_peer_valid(PartlinkState *s, uint32_t port)
{
    struct partlink_fabric_port *slot = partlink_fabric_port(s, port);

    return slot && qatomic_read(&slot->state) == PARTLINK_PORT_UP &&
           qatomic_read(&slot->epoch) == s->peers[port].epoch &&
           qatomic_read(&slot->network) == s->network;
}

/* Drop every peer that may no longer be reached.  With tx_lock held. */
static void partlink_check_peers(PartlinkState *s)
{
    unsigned i;

    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        if (s->peers[i].present && !partlink_peer_valid(s, i)) {
            partlink_drop_peer(s, i);
        }
    }
}

static void partlink_peer_check_bh(void *opaque)
{
    PartlinkState *s = opaque;

    WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
        partlink_check_peers(s);
    }
}

void partlink_drop_peer(PartlinkState *s, uint32_t port)
{
    PartlinkPeer *peer = &s->peers[port];

    if (!peer->present) {
        return;
    }
    trace_partlink_peer_down(port, peer->epoch);
    partlink_ram_unmap_peer(peer);
    close(peer->doorbell_fd);
    peer->doorbell_fd = -1;
    peer->present = false;
    partlink_link_changed(s);
}

static void partlink_close_fds(int *fds, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

/*
 * File descriptors belong to the message they came with: the kernel
 * hands them over with the read that ends in that message's first bytes,
 * so they belong to the last message that starts in that read.  Bound
 * this way, a message that carries fds it should not, or lacks some,
 * cannot shift fds onto the messages after it.
 */
static uint64_t partlink_last_msg_start(PartlinkState *s, uint64_t end)
{
    size_t cur = 0;

    while (cur + sizeof(struct partlink_msg) <= s->msg_len) {
        struct partlink_msg hdr;
        size_t next;

        memcpy(&hdr, s->msg + cur, sizeof(hdr));
        next = cur + sizeof(hdr) + MIN(hdr.len, PARTLINK_MSG_MAX_LEN);
        if (s->msg_pos + next >= end) {
            break;
        }
        cur = next;
    }
    return s->msg_pos + cur;
}

static void partlink_keep_fds(PartlinkState *s, const int *fds, unsigned nr,
                              uint64_t msg)
{
    unsigned i;

    for (i = 0; i < nr; i++) {
        if (s->nr_pending_fds == ARRAY_SIZE(s->pending_fds)) {
            close(fds[i]);
            continue;
        }
        s->pending_fds[s->nr_pending_fds++] = (PartlinkPendingFd) {
            .fd = fds[i], .msg = msg,
        };
    }
}

/* Close the fds of messages up to and including the one at @msg. */
static void partlink_drop_fds(PartlinkState *s, uint64_t msg)
{
    unsigned i, kept = 0;

    for (i = 0; i < s->nr_pending_fds; i++) {
        if (s->pending_fds[i].msg <= msg) {
            close(s->pending_fds[i].fd);
        } else {
            s->pending_fds[kept++] = s->pending_fds[i];
        }
    }
    s->nr_pending_fds = kept;
}

/*
 * Take the first n fds of the message being handled; false if it has
 * fewer (partlink_drop_fds() closes them after the message).
 */
static bool partlink_take_fds(PartlinkState *s, int *fds, unsigned n)
{
    unsigned i, got = 0, kept = 0;

    for (i = 0; i < s->nr_pending_fds; i++) {
        got += s->pending_fds[i].msg == s->msg_pos;
    }
    if (got < n) {
        return false;
    }
    got = 0;
    for (i = 0; i < s->nr_pending_fds; i++) {
        if (s->pending_fds[i].msg == s->msg_pos && got < n) {
            fds[got++] = s->pending_fds[i].fd;
        } else {
            s->pending_fds[kept++] = s->pending_fds[i];
        }
    }
    s->nr_pending_fds = kept;
    return true;
}

static void partlink_send_hello(PartlinkState *s)
{
    struct {
        struct partlink_msg hdr;
        struct partlink_msg_port port;
    } QEMU_PACKED msg = {
        .hdr.type = PARTLINK_MSG_HELLO,
        .hdr.len = sizeof(msg.port),
        .port.abi_version = PARTLINK_ABI_VERSION,
        .port.port = s->port_id,
    };
    int fds[PARTLINK_MAX_FDS];
    Error *err = NULL;
    unsigned i;

    WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
        if (!partlink_ram_layout_own(&s->ram, s->ram_fds, &s->nr_ram_fds,
                                     &err)) {
            error_report_err(err);
            return;
        }
    }
    msg.port.nr_regions = s->ram.nr;
    memcpy(msg.port.mac, s->mac.a, sizeof(msg.port.mac));
    strncpy(msg.port.name, s->name ? s->name : "", PARTLINK_NAME_LEN - 1);
    for (i = 0; i < s->ram.nr; i++) {
        msg.port.regions[i] = (struct partlink_ram_region) {
            .gpa = s->ram.region[i].gpa,
            .size = s->ram.region[i].size,
            .offset = s->ram.region[i].offset,
            .fd_index = s->ram.region[i].fd_index,
        };
    }
    fds[0] = event_notifier_get_fd(&s->doorbell);
    memcpy(fds + 1, s->ram_fds, s->nr_ram_fds * sizeof(int));
    qemu_chr_fe_set_msgfds(&s->chr, fds, s->nr_ram_fds + 1);
    if (qemu_chr_fe_write_all(&s->chr, (uint8_t *)&msg, sizeof(msg)) !=
        sizeof(msg)) {
        warn_report("partlink-pci: cannot send HELLO to partlinkd");
        return;
    }
    trace_partlink_fabric_hello(s->port_id, s->ram.nr);
}

/*
 * Forward a mailbox request to partlinkd.  Only a registered device may:
 * partlinkd knows the sender by the port it registered.
 *
 * We get here from the guest's MMIO write to MBOX_SEND, on its vCPU
 * thread with the BQL held, so the write must not block: were partlinkd
 * stopped with its socket buffer full, qemu_chr_fe_write_all() would
 * spin until it read again, and with the BQL held the whole VM would
 * stall.  So make one non-blocking attempt.  If partlinkd took none of
 * the request, fail: the guest gets UNAVAILABLE at once.  If it took
 * only part, the stream has lost its framing: drop the connection, so
 * that a reconnect registers again on a clean one.  Closing answers the
 * request in flight (CHR_EVENT_CLOSED calls partlink_mbox_disconnected).
 */
bool partlink_fabric_mbox_request(PartlinkState *s, uint32_t seq,
                                  const uint8_t *request, Error **errp)
{
    struct {
        struct partlink_msg hdr;
        struct partlink_msg_mbox_request req;
    } QEMU_PACKED msg = {
        .hdr.type = PARTLINK_MSG_MBOX_REQUEST,
        .hdr.len = sizeof(msg.req),
        .req.seq = seq,
    };
    int ret, saved_errno;

    if (!partlink_fabric_owns_slot(s)) {
        error_setg(errp, "the device is not on the fabric");
        return false;
    }
    if (!qemu_chr_fe_backend_open(&s->chr)) {
        error_setg(errp, "partlinkd is not connected");
        return false;
    }
    memcpy(&msg.req.request, request, sizeof(msg.req.request));
    ret = qemu_chr_fe_write(&s->chr, (uint8_t *)&msg, sizeof(msg));
    saved_errno = errno;
    if (ret == sizeof(msg)) {
        return true;
    }
    if (ret > 0) {
        warn_report("partlink-pci: partlinkd took %d of the %zu bytes of a "
                    "mailbox request, closing the connection", ret,
                    sizeof(msg));
        qemu_chr_fe_disconnect(&s->chr);
        error_setg(errp, "partlinkd took part of the request");
        return false;
    }
    if (ret == 0 || saved_errno == EAGAIN) {
        error_setg(errp, "partlinkd is not reading its socket");
        return false;
    }
    error_setg(errp, "cannot send the request to partlinkd");
    return false;
}

static void partlink_maybe_hello(PartlinkState *s)
{
    if (s->machine_ready && qemu_chr_fe_backend_open(&s->chr)) {
        partlink_send_hello(s);
    }
}

static bool partlink_on_welcome(PartlinkState *s, const uint8_t *payload,
                                uint32_t len, Error **errp)
{
    struct partlink_msg_welcome w;
    struct partlink_fabric *fabric;
    struct stat st;
    bool republish;
    int fd;

    if (len != sizeof(w) || !partlink_take_fds(s, &fd, 1)) {
        error_setg(errp, "malformed WELCOME");
        return false;
    }
    memcpy(&w, payload, sizeof(w));
    if (w.port != s->port_id) {
        close(fd);
        error_setg(errp, "WELCOME for port %u, we are %u", w.port, s->port_id);
        return false;
    }
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(*fabric)) {
        close(fd);
        error_setg(errp, "fabric segment too small");
        return false;
    }
    if (s->fabric && (st.st_dev != s->fabric_dev ||
                      st.st_ino != s->fabric_ino)) {
        /* A new fabric: nothing from the old one is valid any more. */
        partlink_fabric_leave(s);
    }
    if (!s->fabric) {
        fabric = mmap(NULL, sizeof(*fabric), PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0);
        if (fabric == MAP_FAILED) {
            close(fd);
            error_setg_errno(errp, errno, "cannot map the fabric segment");
            return false;
        }
        if (fabric->magic != PARTLINK_FABRIC_MAGIC ||
            fabric->version != PARTLINK_FABRIC_VERSION ||
            fabric->nr_ports != PARTLINK_FABRIC_PORTS) {
            munmap(fabric, sizeof(*fabric));
            close(fd);
            error_setg(errp, "fabric segment has a foreign format");
            return false;
        }
        s->fabric = fabric;
        s->fabric_dev = st.st_dev;
        s->fabric_ino = st.st_ino;
    }
    close(fd);
    partlink_seg_forget_all(s);

    /*
     * Re-registering after a partlinkd restart keeps the epoch, and the
     * slot still holds our RX ring and its head, which peers are filling:
     * republishing would move the head under the driver's feet.
     */
    republish = !s->registered || s->epoch != w.epoch;
    s->epoch = w.epoch;
    s->network = w.network;
    s->port_flags = w.flags;
    if (!s->ever_welcomed) {
        /* A fresh registration: the slot may hold a predecessor's counts. */
        __u64 *slot = s->fabric->ports[s->port_id].counters;
        unsigned i;

        for (i = 0; i < PARTLINK_NR_COUNTERS; i++) {
            qatomic_set(&slot[i], s->local_counters[i]);
        }
        s->ever_welcomed = true;
    }
    s->counters = s->fabric->ports[s->port_id].counters;
    s->registered = true;
    trace_partlink_fabric_welcome(w.port, w.epoch, w.network);
    /* Our network may have changed with partlinkd's configuration. */
    partlink_check_peers(s);
    if (republish) {
        partlink_fabric_publish_rx(s);
        partlink_link_changed(s);
    }
    return true;
}

static bool partlink_on_peer_up(PartlinkState *s, const uint8_t *payload,
                                uint32_t len, Error **errp)
{
    struct partlink_msg_port p;
    int fds[PARTLINK_MAX_FDS];
    unsigned i, nr_fds = 1;
    PartlinkPeer *peer;
    Error *err = NULL;

    if (len != sizeof(p)) {
        error_setg(errp, "malformed PEER_UP");
        return false;
    }
    memcpy(&p, payload, sizeof(p));
    if (p.nr_regions == 0 || p.nr_regions > PARTLINK_MAX_REGIONS) {
        error_setg(errp, "PEER_UP with %u regions", p.nr_regions);
        return false;
    }
    for (i = 0; i < p.nr_regions; i++) {
        if (p.regions[i].fd_index >= PARTLINK_MAX_FDS) {
            error_setg(errp, "PEER_UP names fd %u", p.regions[i].fd_index);
            return false;
        }
        nr_fds = MAX(nr_fds, p.regions[i].fd_index + 1);
    }
    if (!partlink_take_fds(s, fds, nr_fds)) {
        error_setg(errp, "PEER_UP without its %u fds", nr_fds);
        return false;
    }
    if (p.port >= PARTLINK_FABRIC_PORTS || p.port == s->port_id) {
        partlink_close_fds(fds, nr_fds);
        error_setg(errp, "PEER_UP for port %u", p.port);
        return false;
    }
    /*
     * A sender must never block on a peer's doorbell, and the chardev
     * hands over received fds in blocking mode: make it non-blocking
     * (for every holder of the eventfd, its owner included).
     */
    if (!g_unix_set_fd_nonblocking(fds[0], true, NULL)) {
        partlink_close_fds(fds, nr_fds);
        error_setg_errno(errp, errno, "PEER_UP for port %u: cannot make its "
                         "doorbell non-blocking", p.port);
        return false;
    }
    peer = &s->peers[p.port];
    if (peer->present && peer->epoch == p.epoch) {
        /* partlinkd restarted; the mapping we have is still right. */
        partlink_close_fds(fds, nr_fds);
        return true;
    }
    partlink_drop_peer(s, p.port);
    if (!partlink_ram_map_peer(peer, p.regions, p.nr_regions, fds, nr_fds,
                               &err)) {
        /* A peer we cannot map is unreachable, not a broken protocol. */
        partlink_close_fds(fds, nr_fds);
        error_prepend(&err, "partlink-pci: port %u cannot reach peer port "
                      "%u: ", s->port_id, p.port);
        warn_report_err(err);
        return true;
    }
    partlink_close_fds(fds + 1, nr_fds - 1);
    peer->doorbell_fd = fds[0];
    peer->epoch = p.epoch;
    memcpy(peer->mac.a, p.mac, sizeof(peer->mac.a));
    peer->present = true;
    trace_partlink_peer_up(p.port, p.epoch, p.nr_regions);
    partlink_link_changed(s);
    return true;
}

static bool partlink_on_segment(PartlinkState *s, const uint8_t *payload,
                                uint32_t len, Error **errp)
{
    struct partlink_msg_segment m;
    int fd;

    if (len != sizeof(m)) {
        error_setg(errp, "malformed SEGMENT");
        return false;
    }
    if (!partlink_take_fds(s, &fd, 1)) {
        error_setg(errp, "SEGMENT without its fd");
        return false;
    }
    memcpy(&m, payload, sizeof(m));
    return partlink_seg_add(s, &m, fd, errp);
}

static bool partlink_on_seg_peer(PartlinkState *s, const uint8_t *payload,
                                 uint32_t len, Error **errp)
{
    struct partlink_msg_seg_peer p;
    int fd = -1;

    if (len != sizeof(p)) {
        error_setg(errp, "malformed SEG_PEER");
        return false;
    }
    memcpy(&p, payload, sizeof(p));
    if (p.shared && !partlink_take_fds(s, &fd, 1)) {
        error_setg(errp, "SEG_PEER without its doorbell");
        return false;
    }
    if (p.port >= PARTLINK_FABRIC_PORTS || p.port == s->port_id) {
        if (fd >= 0) {
            close(fd);
        }
        error_setg(errp, "SEG_PEER for port %u", p.port);
        return false;
    }
    /* As for PEER_UP: a ring must never block this QEMU. */
    if (fd >= 0 && !g_unix_set_fd_nonblocking(fd, true, NULL)) {
        close(fd);
        error_setg_errno(errp, errno, "SEG_PEER for port %u: cannot make "
                         "its doorbell non-blocking", p.port);
        return false;
    }
    partlink_seg_peer(s, p.port, p.epoch, p.shared, fd);
    return true;
}

static bool partlink_on_message(PartlinkState *s, uint32_t type,
                                const uint8_t *payload, uint32_t len,
                                Error **errp)
{
    trace_partlink_fabric_msg(type, len);
    switch (type) {
    case PARTLINK_MSG_WELCOME:
        return partlink_on_welcome(s, payload, len, errp);
    case PARTLINK_MSG_PEER_UP:
        return partlink_on_peer_up(s, payload, len, errp);
    case PARTLINK_MSG_PEER_DOWN: {
        struct partlink_msg_peer_down d;

        if (len != sizeof(d)) {
            error_setg(errp, "malformed PEER_DOWN");
            return false;
        }
        memcpy(&d, payload, sizeof(d));
        if (d.port < PARTLINK_FABRIC_PORTS &&
            s->peers[d.port].present && s->peers[d.port].epoch == d.epoch) {
            partlink_drop_peer(s, d.port);
        }
        if (d.port < PARTLINK_FABRIC_PORTS) {
            partlink_seg_peer_down(s, d.port, d.epoch);
        }
        return true;
    }
    case PARTLINK_MSG_SEGMENT:
        return partlink_on_segment(s, payload, len, errp);
    case PARTLINK_MSG_SEGMENT_GONE: {
        struct partlink_msg_segment_gone g;

        if (len != sizeof(g)) {
            error_setg(errp, "malformed SEGMENT_GONE");
            return false;
        }
        memcpy(&g, payload, sizeof(g));
        partlink_seg_remove(s, g.id);
        return true;
    }
    case PARTLINK_MSG_SEG_PEER:
        return partlink_on_seg_peer(s, payload, len, errp);
    case PARTLINK_MSG_MBOX_ANSWER: {
        struct partlink_msg_mbox_answer a;

        if (len != sizeof(a)) {
            error_setg(errp, "malformed MBOX_ANSWER");
            return false;
        }
        memcpy(&a, payload, sizeof(a));
        partlink_mbox_answer(s, a.seq, &a.answer);
        return true;
    }
    case PARTLINK_MSG_REFUSE: {
        char reason[sizeof(struct partlink_msg_refuse)] = "";

        memcpy(reason, payload, MIN(len, sizeof(reason) - 1));
        error_report("partlink-pci: partlinkd refused port %u: %s",
                     s->port_id, reason);
        return true;
    }
    default:
        error_setg(errp, "unknown message type %u", type);
        return false;
    }
}

static int partlink_chr_can_read(void *opaque)
{
    PartlinkState *s = opaque;

    return sizeof(s->msg) - s->msg_len;
}

static void partlink_chr_read(void *opaque, const uint8_t *buf, int size)
{
    PartlinkState *s = opaque;
    int fds[PARTLINK_MAX_FDS];
    int nr = qemu_chr_fe_get_msgfds(&s->chr, fds, ARRAY_SIZE(fds));
    struct partlink_msg hdr;
    Error *err = NULL;
    bool ok;

    memcpy(s->msg + s->msg_len, buf, size);
    s->msg_len += size;
    if (nr > 0) {
        partlink_keep_fds(s, fds, nr,
                          partlink_last_msg_start(s, s->msg_pos + s->msg_len));
    }

    while (s->msg_len >= sizeof(hdr)) {
        size_t total;

        memcpy(&hdr, s->msg, sizeof(hdr));
        if (hdr.len > PARTLINK_MSG_MAX_LEN) {
            error_setg(&err, "message of %u bytes", hdr.len);
            break;
        }
        total = sizeof(hdr) + hdr.len;
        if (s->msg_len < total) {
            return;
        }
        WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
            ok = partlink_on_message(s, hdr.type, s->msg + sizeof(hdr),
                                     hdr.len, &err);
        }
        /* What the message did not take was not meant for any other. */
        partlink_drop_fds(s, s->msg_pos);
        if (!ok) {
            break;
        }
        s->msg_len -= total;
        s->msg_pos += total;
        memmove(s->msg, s->msg + total, s->msg_len);
    }
    if (err) {
        error_prepend(&err, "partlink-pci: protocol error from partlinkd: ");
        error_report_err(err);
        qemu_chr_fe_disconnect(&s->chr);
    }
}

static void partlink_chr_event(void *opaque, QEMUChrEvent event)
{
    PartlinkState *s = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        partlink_maybe_hello(s);
        break;
    case CHR_EVENT_CLOSED:
        /* The data path goes on without partlinkd; only drop half-read. */
        s->msg_len = 0;
        s->msg_pos = 0;
        partlink_drop_fds(s, UINT64_MAX);
        trace_partlink_fabric_closed(s->port_id);
        /* partlinkd forgets the request in flight: nobody will answer it. */
        partlink_mbox_disconnected(s);
        break;
    default:
        break;
    }
}

static void partlink_doorbell(EventNotifier *n)
{
    PartlinkState *s = container_of(n, PartlinkState, doorbell);

    if (!event_notifier_test_and_clear(n)) {
        return;
    }
    partlink_seg_doorbell(s);
    /*
     * Whoever wrote the doorbell, a peer after delivering here or our TX
     * thread after handing entries back, took the driver's arming first:
     * one interrupt per arming.  Under KVM this notifier would be the
     * vector's irqfd and this function would not run.
     */
    if (!(s->irq_ctrl & PARTLINK_IRQ_DATA) ||
        !(s->status & PARTLINK_STATUS_DRIVER_OK)) {
        return;
    }
    partlink_count(s, PARTLINK_CTR_RX_INTERRUPTS, 1);
    trace_partlink_irq(PARTLINK_VEC_DATA);
    msix_notify(PCI_DEVICE(s), PARTLINK_VEC_DATA);
}

static void partlink_machine_done(Notifier *n, void *data)
{
    PartlinkState *s = container_of(n, PartlinkState, machine_done);

    s->machine_ready = true;
    partlink_maybe_hello(s);
}

void partlink_fabric_realize(PartlinkState *s, Error **errp)
{
    unsigned i;
    int ret;

    s->counters = s->local_counters;
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        s->peers[i].doorbell_fd = -1;
    }
    ret = event_notifier_init(&s->doorbell, false);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "partlink-pci: cannot create doorbell");
        return;
    }
    event_notifier_set_handler(&s->doorbell, partlink_doorbell);
    s->peer_check = qemu_bh_new(partlink_peer_check_bh, s);
    s->rx_sync_timer = timer_new_ms(QEMU_CLOCK_REALTIME,
                                    partlink_rx_sync_retry, s);
    if (s->port_id >= PARTLINK_FABRIC_PORTS) {
        error_setg(errp, "partlink-pci: port must be below %d",
                   PARTLINK_FABRIC_PORTS);
        return;
    }
    if (!qemu_chr_fe_backend_connected(&s->chr)) {
        /* No fabric: a lone adapter whose link stays down. */
        return;
    }
    qemu_chr_fe_set_handlers(&s->chr, partlink_chr_can_read,
                             partlink_chr_read, partlink_chr_event, NULL, s,
                             NULL, true);
    s->machine_done.notify = partlink_machine_done;
    qemu_add_machine_init_done_notifier(&s->machine_done);
}

void partlink_fabric_unrealize(PartlinkState *s)
{
    unsigned i;

    if (s->machine_done.notify) {
        qemu_remove_machine_init_done_notifier(&s->machine_done);
    }
    /*
     * Closing the connection tells partlinkd, which frees our slot; the
     * chardev itself is the user's (-chardev) and stays.
     */
    if (qemu_chr_fe_backend_open(&s->chr)) {
        qemu_chr_fe_disconnect(&s->chr);
    }
    qemu_chr_fe_deinit(&s->chr, false);
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        partlink_drop_peer(s, i);
    }
    partlink_drop_fds(s, UINT64_MAX);
    if (s->fabric) {
        partlink_fabric_leave(s);
    }
    event_notifier_set_handler(&s->doorbell, NULL);
    event_notifier_cleanup(&s->doorbell);
    if (s->peer_check) {
        qemu_bh_delete(s->peer_check);
        s->peer_check = NULL;
    }
    if (s->rx_sync_timer) {
        timer_free(s->rx_sync_timer);
        s->rx_sync_timer = NULL;
    }
}
