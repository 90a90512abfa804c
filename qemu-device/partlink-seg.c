/*
 * partlink-pci: shared segments
 *
 * partlinkd hands this device the memory of each segment that the
 * operator's table lets this partition use (SEGMENT, with a sealed
 * memfd, opened read-only for a read-only partition).  The device places
 * it in the BAR 2 window and describes it in the read-only table at
 * SEG_TABLE, from which the guest's driver makes its device files.  A
 * partition that is not in a segment's table entry never receives its fd.
 *
 * Doorbells travel as the data path's do: the ringing device sets the
 * segment's bit in the target's seg_rung word of the fabric segment, then
 * writes the target's doorbell eventfd; the target's device turns the
 * bits into SEG_PENDING and the SEG vector.
 *
 * Everything here runs under the BQL: messages from partlinkd in the main
 * loop, registers on a vCPU.  The TX thread never touches segments.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/madvise.h"
#include "qemu/units.h"
#include "hw/pci/msix.h"
#include "partlink.h"
#include "trace.h"

#define TYPE_PARTLINK_SEGMENT "partlink-segment"
OBJECT_DECLARE_SIMPLE_TYPE(PartlinkSegMemory, PARTLINK_SEGMENT)

/*
 * The memory of one segment, an object of its own: the window's flat
 * views hold references to a region's owner, so when a segment goes the
 * mapping lives on until no vCPU can be using it any more, and is freed
 * with the last reference rather than with the device.
 */
struct PartlinkSegMemory {
    Object parent_obj;
    MemoryRegion mr;
};

static const TypeInfo partlink_segment_info = {
    .name = TYPE_PARTLINK_SEGMENT,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(PartlinkSegMemory),
};

static void partlink_seg_register_types(void)
{
    type_register_static(&partlink_segment_info);
}

type_init(partlink_seg_register_types)

static void partlink_seg_notify(PartlinkState *s)
{
    if (s->irq_ctrl & PARTLINK_IRQ_SEG) {
        trace_partlink_irq(PARTLINK_VEC_SEG);
        msix_notify(PCI_DEVICE(s), PARTLINK_VEC_SEG);
    }
}

static void partlink_seg_changed(PartlinkState *s)
{
    s->seg_generation++;
    partlink_seg_notify(s);
}

static PartlinkSegment *partlink_seg_by_id(PartlinkState *s, uint32_t id)
{
    unsigned i;

    for (i = 0; i < PARTLINK_SEG_SLOTS; i++) {
        if (s->segs[i].mem && s->segs[i].id == id) {
            return &s->segs[i];
        }
    }
    return NULL;
}

static uint64_t partlink_seg_align(uint64_t size)
{
    /* Large segments on huge-page boundaries, should the host use them. */
    return size >= 2 * MiB ? 2 * MiB : qemu_real_host_page_size();
}

/* Whether the driver may still map what left this slot. */
static bool partlink_seg_hole_held(PartlinkState *s, unsigned slot)
{
    PartlinkSegHole *hole = &s->seg_holes[slot];

    if (hole->held && (int32_t)(s->seg_ack - hole->generation) >= 0) {
        hole->held = false;
    }
    return hole->held;
}

static bool partlink_seg_overlaps(uint64_t at, uint64_t size,
                                  uint64_t offset, uint64_t len,
                                  uint64_t *end)
{
    if (at < offset + len && offset < at + size) {
        *end = offset + len;
        return true;
    }
    return false;
}

/* First fit in the window, around segments and held holes. */
static bool partlink_seg_place(PartlinkState *s, uint64_t size,
                               uint64_t *offset)
{
    uint64_t align = partlink_seg_align(size);
    uint64_t at = 0, end;
    bool moved = true;
    unsigned i;

    while (moved) {
        moved = false;
        at = ROUND_UP(at, align);
        if (at > s->seg_window_size || s->seg_window_size - at < size) {
            return false;
        }
        for (i = 0; i < PARTLINK_SEG_SLOTS; i++) {
            PartlinkSegment *seg = &s->segs[i];
            PartlinkSegHole *hole = &s->seg_holes[i];

            if ((seg->mem && partlink_seg_overlaps(at, size, seg->offset,
                                                   seg->size, &end)) ||
                (partlink_seg_hole_held(s, i) &&
                 partlink_seg_overlaps(at, size, hole->offset, hole->size,
                                       &end))) {
                at = end;
                moved = true;
            }
        }
    }
    *offset = at;
    return true;
}

static void partlink_seg_unmap(PartlinkState *s, PartlinkSegment *seg)
{
    PartlinkSegHole *hole = &s->seg_holes[seg - s->segs];

    trace_partlink_seg_gone(s->port_id, seg->id, seg->name);
    /* Callers announce the removal as the next generation. */
    hole->held = true;
    hole->generation = s->seg_generation + 1;
    hole->offset = seg->offset;
    hole->size = seg->size;
    memory_region_del_subregion(&s->seg_window, &seg->mem->mr);
    object_unref(OBJECT(seg->mem));
    memset(seg, 0, sizeof(*seg));
}

/* partlinkd's description of a segment, checked as any input is. */
static bool partlink_seg_desc_ok(PartlinkState *s,
                                 const struct partlink_msg_segment *m,
                                 Error **errp)
{
    size_t name_len = strnlen(m->name, sizeof(m->name));

    if (m->id >= PARTLINK_SEG_IDS) {
        error_setg(errp, "SEGMENT with id %u", m->id);
        return false;
    }
    if (name_len == 0 || name_len == sizeof(m->name)) {
        error_setg(errp, "SEGMENT %u without a NUL-terminated name", m->id);
        return false;
    }
    if (m->flags & ~(uint32_t)(PARTLINK_SEG_READ_ONLY | PARTLINK_SEG_PINNED)) {
        error_setg(errp, "SEGMENT %u with flags 0x%x", m->id, m->flags);
        return false;
    }
    if (m->mode > 0777) {
        error_setg(errp, "SEGMENT %u with mode 0%o", m->id, m->mode);
        return false;
    }
    if (m->size == 0 || m->size % qemu_real_host_page_size() ||
        m->size > PARTLINK_SEG_SIZE_MAX) {
        error_setg(errp, "SEGMENT %u of %" PRIu64 " bytes", m->id,
                   (uint64_t)m->size);
        return false;
    }
    return true;
}

static bool partlink_seg_fd_ok(int fd, uint64_t size, Error **errp)
{
    int seals = fcntl(fd, F_GET_SEALS);
    struct stat st;

    /* A file that could shrink under the guest would SIGBUS this QEMU. */
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        error_setg(errp, "its memory is not sealed against shrinking");
        return false;
    }
    if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < size) {
        error_setg(errp, "its memory is smaller than the segment");
        return false;
    }
    return true;
}

static void partlink_seg_set_desc(PartlinkSegment *seg,
                                  const struct partlink_msg_segment *m)
{
    seg->id = m->id;
    seg->flags = m->flags;
    seg->size = m->size;
    seg->uid = m->uid;
    seg->gid = m->gid;
    seg->mode = m->mode;
    memcpy(seg->name, m->name, sizeof(seg->name));
}

/* Takes @fd. */
bool partlink_seg_add(PartlinkState *s, const struct partlink_msg_segment *m,
                      int fd, Error **errp)
{
    g_autofree char *region = NULL;
    PartlinkSegment *seg = NULL;
    PartlinkSegMemory *mem;
    uint32_t ram_flags = RAM_SHARED;
    Error *err = NULL;
    uint64_t offset;
    unsigned i;

    if (!partlink_seg_desc_ok(s, m, errp)) {
        close(fd);
        return false;
    }
    seg = partlink_seg_by_id(s, m->id);
    if (seg && seg->size == m->size &&
        (seg->flags & PARTLINK_SEG_READ_ONLY) ==
        (m->flags & PARTLINK_SEG_READ_ONLY)) {
        /* The same memory with a new owner or mode: the table only. */
        close(fd);
        partlink_seg_set_desc(seg, m);
        trace_partlink_seg_update(s->port_id, m->id, seg->name);
        partlink_seg_changed(s);
        return true;
    }
    if (seg) {
        partlink_seg_unmap(s, seg);
    }
    if (!s->seg_window_size) {
        close(fd);
        warn_report("partlink-pci: port %u has no segment window "
                    "(segment-window=0): segment %s not mapped",
                    s->port_id, m->name);
        partlink_seg_changed(s);
        return true;
    }
    for (i = 0; i < PARTLINK_SEG_SLOTS && !seg; i++) {
        if (!s->segs[i].mem && !partlink_seg_hole_held(s, i)) {
            seg = &s->segs[i];
        }
    }
    if (!seg) {
        error_setg(&err, "all %d slots are taken or not yet released by "
                   "the driver", PARTLINK_SEG_SLOTS);
    } else if (!partlink_seg_place(s, m->size, &offset)) {
        error_setg(&err, "no room for %" PRIu64 " bytes in the %" PRIu64
                   "-byte window (property segment-window)",
                   (uint64_t)m->size, s->seg_window_size);
    } else {
        partlink_seg_fd_ok(fd, m->size, &err);
    }
    if (err) {
        /* partlinkd's table is not ours to judge: the segment is missing. */
        close(fd);
        error_prepend(&err, "partlink-pci: port %u cannot map segment %s: ",
                      s->port_id, m->name);
        warn_report_err(err);
        partlink_seg_changed(s);
        return true;
    }

    if (m->flags & PARTLINK_SEG_READ_ONLY) {
        /* Guest writes are dropped; the host mapping is read-only too. */
        ram_flags |= RAM_READONLY | RAM_READONLY_FD;
    }
    mem = PARTLINK_SEGMENT(object_new(TYPE_PARTLINK_SEGMENT));
    region = g_strdup_printf("partlink-seg-%s", m->name);
    if (!memory_region_init_ram_from_fd(&mem->mr, OBJECT(mem), region,
                                        m->size, ram_flags, fd, 0, &err)) {
        close(fd);
        object_unref(OBJECT(mem));
        error_prepend(&err, "partlink-pci: port %u cannot map segment %s: ",
                      s->port_id, m->name);
        warn_report_err(err);
        partlink_seg_changed(s);
        return true;
    }
    /* The RAM block owns @fd from here. Core dumps leave segments out. */
    qemu_madvise(memory_region_get_ram_ptr(&mem->mr), m->size,
                 QEMU_MADV_DONTDUMP);
    partlink_seg_set_desc(seg, m);
    seg->offset = offset;
    seg->mem = mem;
    memory_region_add_subregion(&s->seg_window, offset, &mem->mr);
    trace_partlink_seg_map(s->port_id, m->id, seg->name, offset, m->size);
    partlink_seg_changed(s);
    return true;
}

void partlink_seg_remove(PartlinkState *s, uint32_t id)
{
    PartlinkSegment *seg = partlink_seg_by_id(s, id);

    if (seg) {
        s->seg_pending &= ~(1u << (seg - s->segs));
        partlink_seg_unmap(s, seg);
        partlink_seg_changed(s);
    }
}


static void partlink_seg_peer_clear(PartlinkSegPeer *peer)
{
    if (peer->doorbell_fd >= 0) {
        close(peer->doorbell_fd);
    }
    peer->doorbell_fd = -1;
    peer->shared = 0;
    peer->epoch = 0;
}

/* Takes @fd, which is -1 when @shared is 0. */
void partlink_seg_peer(PartlinkState *s, uint32_t port, uint32_t epoch,
                       uint64_t shared, int fd)
{
    PartlinkSegPeer *peer = &s->seg_peers[port];

    partlink_seg_peer_clear(peer);
    if (!shared) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    peer->doorbell_fd = fd;
    peer->epoch = epoch;
    peer->shared = shared;
}

void partlink_seg_peer_down(PartlinkState *s, uint32_t port, uint32_t epoch)
{
    if (s->seg_peers[port].doorbell_fd >= 0 &&
        s->seg_peers[port].epoch == epoch) {
        partlink_seg_peer_clear(&s->seg_peers[port]);
    }
}

/*
 * A new partlinkd (a WELCOME) has memory of its own for every segment
 * and says anew which segments and peers we have: forget the old ones.
 */
void partlink_seg_forget_all(PartlinkState *s)
{
    bool any = false;
    unsigned i;

    for (i = 0; i < PARTLINK_SEG_SLOTS; i++) {
        if (s->segs[i].mem) {
            partlink_seg_unmap(s, &s->segs[i]);
            any = true;
        }
    }
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        partlink_seg_peer_clear(&s->seg_peers[i]);
    }
    s->seg_pending = 0;
    if (any) {
        partlink_seg_changed(s);
    }
}

/* Ring one port for segment @id; false if it is not there to hear it. */
static bool partlink_seg_ring_port(PartlinkState *s, uint32_t port,
                                   uint32_t id)
{
    PartlinkSegPeer *peer = &s->seg_peers[port];
    struct partlink_fabric_port *slot;
    uint64_t one = 1;

    if (!s->fabric || peer->doorbell_fd < 0) {
        return false;
    }
    slot = &s->fabric->ports[port];
    if (qatomic_load_acquire(&slot->state) != PARTLINK_PORT_UP ||
        qatomic_read(&slot->epoch) != peer->epoch) {
        return false;
    }
    qatomic_or(&slot->seg_rung, 1ull << id);
    /* Non-blocking: a full counter means a wakeup is pending anyway. */
    if (write(peer->doorbell_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        trace_partlink_kick_failed(port, errno);
    }
    return true;
}

static uint32_t partlink_seg_ring(PartlinkState *s, uint32_t val)
{
    unsigned slot = val & 0xff;
    uint32_t port = (val >> PARTLINK_SEG_RING_PORT_SHIFT) & 0xff;
    bool all = val & PARTLINK_SEG_RING_ALL;
    bool members = false, rung = false;
    uint64_t bit;
    uint32_t id, p;

    if ((val & ~(PARTLINK_SEG_RING_ALL | 0xffffu)) || (all && port)) {
        return PARTLINK_SEG_ST_BAD_VALUE;
    }
    if (slot >= PARTLINK_SEG_SLOTS || !s->segs[slot].mem) {
        return PARTLINK_SEG_ST_BAD_SLOT;
    }
    id = s->segs[slot].id;
    bit = 1ull << id;
    if (!all) {
        if (port >= PARTLINK_FABRIC_PORTS || port == s->port_id ||
            !(s->seg_peers[port].shared & bit)) {
            return PARTLINK_SEG_ST_NOT_MEMBER;
        }
        return partlink_seg_ring_port(s, port, id) ? PARTLINK_SEG_ST_OK :
                                                     PARTLINK_SEG_ST_PEER_DOWN;
    }
    for (p = 0; p < PARTLINK_FABRIC_PORTS; p++) {
        if (p != s->port_id && (s->seg_peers[p].shared & bit)) {
            members = true;
            rung |= partlink_seg_ring_port(s, p, id);
        }
    }
    if (!members) {
        return PARTLINK_SEG_ST_NOT_MEMBER;
    }
    return rung ? PARTLINK_SEG_ST_OK : PARTLINK_SEG_ST_PEER_DOWN;
}

/* Our doorbell rang: collect the segments peers rang for. */
void partlink_seg_doorbell(PartlinkState *s)
{
    uint32_t pending = 0;
    uint64_t rung;
    unsigned i;

    if (!s->registered || !s->fabric) {
        return;
    }
    /*
     * Every data interrupt passes here: look before the locked exchange,
     * so that packets alone never write the senders' cache line.
     */
    if (!qatomic_read(&s->fabric->ports[s->port_id].seg_rung)) {
        return;
    }
    rung = qatomic_xchg(&s->fabric->ports[s->port_id].seg_rung, 0);
    for (i = 0; i < PARTLINK_SEG_SLOTS; i++) {
        if (s->segs[i].mem && (rung & (1ull << s->segs[i].id))) {
            pending |= 1u << i;
        }
    }
    if (pending & ~s->seg_pending) {
        s->seg_pending |= pending;
        partlink_seg_notify(s);
    }
}

static uint32_t partlink_seg_entry_word(PartlinkState *s, hwaddr off)
{
    unsigned slot = off / PARTLINK_SEG_ENTRY_SIZE;
    const PartlinkSegment *seg = &s->segs[slot];
    struct partlink_seg_entry e = { 0 };
    uint32_t word;

    if (seg->mem) {
        memcpy(e.name, seg->name, sizeof(e.name));
        e.offset = cpu_to_le64(seg->offset);
        e.size = cpu_to_le64(seg->size);
        e.uid = cpu_to_le32(seg->uid);
        e.gid = cpu_to_le32(seg->gid);
        e.mode = cpu_to_le16(seg->mode);
        e.flags = cpu_to_le16(seg->flags | PARTLINK_SEG_PRESENT);
        e.id = cpu_to_le32(seg->id);
    }
    memcpy(&word, (uint8_t *)&e + off % PARTLINK_SEG_ENTRY_SIZE,
           sizeof(word));
    return le32_to_cpu(word);
}

bool partlink_seg_read(PartlinkState *s, hwaddr addr, uint64_t *val)
{
    if (addr >= PARTLINK_REG_SEG_TABLE &&
        addr < PARTLINK_REG_SEG_TABLE +
               PARTLINK_SEG_SLOTS * PARTLINK_SEG_ENTRY_SIZE) {
        *val = partlink_seg_entry_word(s, addr - PARTLINK_REG_SEG_TABLE);
        return true;
    }
    switch (addr) {
    case PARTLINK_REG_SEG_SLOTS:
        *val = s->seg_window_size ? PARTLINK_SEG_SLOTS : 0;
        return true;
    case PARTLINK_REG_SEG_GENERATION:
        *val = s->seg_generation;
        return true;
    case PARTLINK_REG_SEG_PENDING:
        *val = s->seg_pending;
        s->seg_pending = 0;
        return true;
    case PARTLINK_REG_SEG_RING_STATUS:
        *val = s->seg_ring_status;
        return true;
    case PARTLINK_REG_SEG_ERRORS:
        *val = s->seg_errors;
        return true;
    default:
        return false;
    }
}

/*
 * A write to a segment register: PARTLINK_SEG_WRITE_NOT_MINE for other
 * registers, _REFUSED for a value the caller counts as a bad access.
 */
PartlinkSegWrite partlink_seg_write(PartlinkState *s, hwaddr addr,
                                    uint64_t val)
{
    if (addr == PARTLINK_REG_SEG_ACK) {
        /* A generation the device has not reached yet releases nothing. */
        if ((int32_t)(s->seg_generation - (uint32_t)val) < 0) {
            return PARTLINK_SEG_WRITE_REFUSED;
        }
        s->seg_ack = val;
        return PARTLINK_SEG_WRITE_DONE;
    }
    if (addr != PARTLINK_REG_SEG_RING) {
        return PARTLINK_SEG_WRITE_NOT_MINE;
    }
    s->seg_ring_status = partlink_seg_ring(s, val);
    if (s->seg_ring_status != PARTLINK_SEG_ST_OK) {
        s->seg_errors++;
        qemu_log_mask(LOG_GUEST_ERROR, "partlink: SEG_RING 0x%" PRIx64
                      " refused with status %u\n", val, s->seg_ring_status);
    }
    trace_partlink_seg_ring(s->port_id, val, s->seg_ring_status);
    return PARTLINK_SEG_WRITE_DONE;
}

void partlink_seg_reset(PartlinkState *s)
{
    /* After a machine reset no guest process maps anything. */
    s->seg_ack = s->seg_generation;
    s->seg_pending = 0;
    s->seg_ring_status = 0;
    s->seg_errors = 0;
}

/* What is left of the window where no segment is. */
static uint64_t partlink_seg_hole_read(void *opaque, hwaddr addr,
                                       unsigned size)
{
    return ~0ull;
}

static void partlink_seg_hole_write(void *opaque, hwaddr addr, uint64_t val,
                                    unsigned size)
{
    qemu_log_mask(LOG_GUEST_ERROR, "partlink: write to 0x%" HWADDR_PRIx
                  " of the segment window, where no segment is\n", addr);
}

static const MemoryRegionOps partlink_seg_hole_ops = {
    .read = partlink_seg_hole_read,
    .write = partlink_seg_hole_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

void partlink_seg_realize(PartlinkState *s, Error **errp)
{
    unsigned i;

    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        s->seg_peers[i].doorbell_fd = -1;
    }
    if (!s->seg_window_size) {
        return;
    }
    if (!is_power_of_2(s->seg_window_size) ||
        s->seg_window_size < qemu_real_host_page_size()) {
        error_setg(errp, "partlink-pci: segment-window must be a power of "
                   "two of at least the page size, or 0 for none");
        return;
    }
    memory_region_init(&s->seg_window, OBJECT(s), "partlink-segments",
                       s->seg_window_size);
    memory_region_init_io(&s->seg_hole, OBJECT(s), &partlink_seg_hole_ops, s,
                          "partlink-segments-hole", s->seg_window_size);
    memory_region_add_subregion_overlap(&s->seg_window, 0, &s->seg_hole, -1);
    pci_register_bar(PCI_DEVICE(s), PARTLINK_SEG_BAR,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     PCI_BASE_ADDRESS_MEM_PREFETCH, &s->seg_window);
}

void partlink_seg_unrealize(PartlinkState *s)
{
    unsigned i;

    for (i = 0; i < PARTLINK_SEG_SLOTS; i++) {
        if (s->segs[i].mem) {
            partlink_seg_unmap(s, &s->segs[i]);
        }
    }
    for (i = 0; i < PARTLINK_FABRIC_PORTS; i++) {
        partlink_seg_peer_clear(&s->seg_peers[i]);
    }
}
