/*
 * partlink-pci: guest RAM layouts
 *
 * Every address a guest writes into a descriptor is checked here against
 * the RAM layout of the guest it belongs to, this one's or a peer's, and
 * turned into a host address only if the whole range lies inside one RAM
 * region.  Nothing else in the device dereferences guest addresses.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/ramblock.h"
#include "hw/boards.h"
#include "qapi/error.h"
#include "qemu/madvise.h"
#include "qemu/rcu.h"
#include "partlink.h"

void *partlink_ram_translate(const PartlinkRamLayout *layout, uint64_t gpa,
                             uint64_t len)
{
    unsigned i;

    if (len == 0) {
        return NULL;
    }
    for (i = 0; i < layout->nr; i++) {
        const PartlinkRamRegion *r = &layout->region[i];

        /* Written so that no sum can wrap around. */
        if (gpa >= r->gpa && gpa - r->gpa < r->size &&
            len <= r->size - (gpa - r->gpa)) {
            return r->host + (gpa - r->gpa);
        }
    }
    return NULL;
}

typedef struct PartlinkLayoutWalk {
    const RAMBlock *guest_ram;  /* the machine's RAM backend */
    PartlinkRamLayout *layout;
    int *fds;
    unsigned nr_fds;
    bool overflow;
} PartlinkLayoutWalk;

static uint32_t partlink_fd_index(PartlinkLayoutWalk *w, int fd)
{
    unsigned i;

    for (i = 0; i < w->nr_fds; i++) {
        if (w->fds[i] == fd) {
            return i + 1;
        }
    }
    if (w->nr_fds == PARTLINK_MAX_REGIONS) {
        return 0;
    }
    w->fds[w->nr_fds++] = fd;
    return w->nr_fds;
}

static bool partlink_layout_range(Int128 start, Int128 len,
                                  const MemoryRegion *cmr,
                                  hwaddr offset_in_region, void *opaque)
{
    PartlinkLayoutWalk *w = opaque;
    PartlinkRamLayout *l = w->layout;
    MemoryRegion *mr = (MemoryRegion *)cmr;
    uint64_t gpa = int128_get64(start);
    uint64_t size = int128_get64(len);
    PartlinkRamRegion *prev = l->nr ? &l->region[l->nr - 1] : NULL;
    uint64_t offset;
    uint8_t *host;
    uint32_t idx;
    int fd;

    /*
     * Only the machine's RAM: other shared memory mapped into the guest
     * (an ivshmem BAR, nvdimm, virtio-pmem) is no place for packets and
     * must not be handed to peers.
     */
    if (!memory_region_is_ram(mr) || memory_region_is_rom(mr) ||
        mr->readonly || !mr->ram_block || mr->ram_block != w->guest_ram) {
        return false;
    }
    fd = memory_region_get_fd(mr);
    if (fd < 0 || !qemu_ram_is_shared(mr->ram_block)) {
        return false;
    }
    /* Linux keeps the first MiB for firmware; its mapping changes at will. */
    if (gpa + size <= PARTLINK_RAM_FLOOR) {
        return false;
    }
    if (gpa < PARTLINK_RAM_FLOOR) {
        offset_in_region += PARTLINK_RAM_FLOOR - gpa;
        size -= PARTLINK_RAM_FLOOR - gpa;
        gpa = PARTLINK_RAM_FLOOR;
    }
    host = (uint8_t *)memory_region_get_ram_ptr(mr) + offset_in_region;
    offset = mr->ram_block->fd_offset + offset_in_region;
    idx = partlink_fd_index(w, fd);
    if (!idx) {
        w->overflow = true;
        return true;
    }
    if (prev && prev->fd_index == idx && prev->gpa + prev->size == gpa &&
        prev->offset + prev->size == offset &&
        prev->host + prev->size == host) {
        prev->size += size;
        return false;
    }
    if (l->nr == PARTLINK_MAX_REGIONS) {
        w->overflow = true;
        return true;
    }
    l->region[l->nr++] = (PartlinkRamRegion) {
        .gpa = gpa, .size = size, .offset = offset, .fd_index = idx,
        .host = host,
    };
    return false;
}

/* The device's own RAM, as the memory API maps it now. */
bool partlink_ram_layout_own(PartlinkRamLayout *layout, int *fds,
                             unsigned *nr_fds, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    PartlinkLayoutWalk w = {
        .guest_ram = ms->ram ? ms->ram->ram_block : NULL,
        .layout = layout,
        .fds = fds,
    };

    memset(layout, 0, sizeof(*layout));
    WITH_RCU_READ_LOCK_GUARD() {
        FlatView *fv = address_space_to_flatview(&address_space_memory);

        flatview_for_each_range(fv, partlink_layout_range, &w);
    }
    if (w.overflow) {
        error_setg(errp, "partlink-pci: guest RAM is split into more than %d "
                   "regions", PARTLINK_MAX_REGIONS);
        return false;
    }
    if (!layout->nr) {
        error_setg(errp, "partlink-pci: no shared guest RAM above 1 MiB");
        return false;
    }
    *nr_fds = w.nr_fds;
    return true;
}

void partlink_ram_unmap_peer(PartlinkPeer *peer)
{
    unsigned i;

    for (i = 0; i < peer->nr_maps; i++) {
        munmap(peer->maps[i].addr, peer->maps[i].len);
    }
    peer->nr_maps = 0;
    memset(&peer->ram, 0, sizeof(peer->ram));
}

/*
 * Map a peer's RAM files and describe its RAM with host addresses in
 * this process.  fds[0] is the doorbell; RAM fds follow.
 */
bool partlink_ram_map_peer(PartlinkPeer *peer,
                           const struct partlink_ram_region *regions,
                           unsigned nr_regions, const int *fds,
                           unsigned nr_fds, Error **errp)
{
    unsigned i;

    if (nr_regions == 0 || nr_regions > PARTLINK_MAX_REGIONS ||
        nr_fds < 2 || nr_fds > PARTLINK_MAX_FDS) {
        error_setg(errp, "%u regions with %u fds", nr_regions, nr_fds);
        return false;
    }
    peer->nr_maps = 0;
    for (i = 1; i < nr_fds; i++) {
        struct stat st;
        void *addr;

        if (fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode) ||
            st.st_size <= 0) {
            error_setg(errp, "RAM fd %u is not a regular file", i);
            goto fail;
        }
        /*
         * A file the peer could truncate would fault this QEMU on its
         * next copy: only a memfd sealed against shrinking will do.
         */
        if (!(fcntl(fds[i], F_GET_SEALS) & F_SEAL_SHRINK)) {
            error_setg(errp, "its RAM is not a memfd sealed against "
                       "shrinking (use memory-backend-memfd with seal=on)");
            goto fail;
        }
        addr = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    fds[i], 0);
        if (addr == MAP_FAILED) {
            error_setg_errno(errp, errno, "cannot map RAM fd %u", i);
            goto fail;
        }
        /* A core dump of this QEMU must not carry its peers' memory. */
        qemu_madvise(addr, st.st_size, QEMU_MADV_DONTDUMP);
        peer->maps[peer->nr_maps++] = (PartlinkMapping) {
            .addr = addr, .len = st.st_size,
        };
    }
    peer->ram.nr = nr_regions;
    for (i = 0; i < nr_regions; i++) {
        const struct partlink_ram_region *r = &regions[i];
        const PartlinkMapping *m;

        if (r->fd_index < 1 || r->fd_index >= nr_fds) {
            error_setg(errp, "region %u names fd %u", i, r->fd_index);
            goto fail;
        }
        m = &peer->maps[r->fd_index - 1];
        if (r->size == 0 || r->offset > m->len ||
            r->size > m->len - r->offset || r->gpa + r->size < r->gpa) {
            error_setg(errp, "region %u lies outside its file", i);
            goto fail;
        }
        peer->ram.region[i] = (PartlinkRamRegion) {
            .gpa = r->gpa, .size = r->size, .offset = r->offset,
            .fd_index = r->fd_index,
            .host = (uint8_t *)m->addr + r->offset,
        };
    }
    return true;

fail:
    partlink_ram_unmap_peer(peer);
    return false;
}
