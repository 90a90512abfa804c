/*
 * partlink-pci: inter-partition adapter
 *
 * A PCI network adapter that lets partitions (guests) exchange packets by
 * copying each packet once, from the sender's RAM straight into a receive
 * buffer the destination posted.  This file is the PCI side: registers,
 * interrupts, reset; partlink.h lists the others.  docs/spec.md is the
 * contract.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "exec/cpu-common.h"
#include "exec/memory.h"
#include "hw/boards.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "migration/blocker.h"
#include "net/eth.h"
#include "qapi/error.h"
#include "trace.h"
#include "partlink.h"

void partlink_count(PartlinkState *s, unsigned counter, uint64_t n)
{
    qatomic_add(&s->counters[counter], n);
}

static uint32_t partlink_link_reg(PartlinkState *s)
{
    return (s->registered ? PARTLINK_LINK_UP : 0) |
           partlink_nr_peers(s) << PARTLINK_LINK_PEERS_SHIFT;
}

void partlink_link_changed(PartlinkState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    partlink_count(s, PARTLINK_CTR_LINK_CHANGES, 1);
    trace_partlink_link(s->port_id, partlink_link_reg(s));
    if ((s->irq_ctrl & PARTLINK_IRQ_LINK) &&
        (s->status & PARTLINK_STATUS_DRIVER_OK) && msix_enabled(pdev)) {
        trace_partlink_irq(PARTLINK_VEC_LINK);
        msix_notify(pdev, PARTLINK_VEC_LINK);
    }
}

void partlink_bad_access(PartlinkState *s, hwaddr addr, unsigned size,
                         const char *why)
{
    s->bad_access++;
    trace_partlink_bad_access(addr, size, why);
    qemu_log_mask(LOG_GUEST_ERROR, "partlink: %s at 0x%" HWADDR_PRIx
                  " size %u\n", why, addr, size);
}

static uint64_t partlink_reg_read(void *opaque, hwaddr addr, unsigned size)
{
    PartlinkState *s = opaque;
    const uint8_t *mac = s->mac.a;
    uint64_t val = 0;

    if (size != 4) {
        partlink_bad_access(s, addr, size, "read not 32 bits wide");
        return 0;
    }
    switch (addr) {
    case PARTLINK_REG_MAGIC:
        val = PARTLINK_MAGIC;
        break;
    case PARTLINK_REG_VERSION:
        val = PARTLINK_ABI_VERSION;
        break;
    case PARTLINK_REG_DEV_FEATURES:
        val = PARTLINK_FEATURES;
        break;
    case PARTLINK_REG_DRV_FEATURES:
        val = s->drv_features;
        break;
    case PARTLINK_REG_STATUS:
        val = s->status;
        if (partlink_fabric_rx_resetting(s)) {
            val |= PARTLINK_STATUS_RESETTING;
        }
        break;
    case PARTLINK_REG_MAC_LO:
        val = ldl_le_p(mac);
        break;
    case PARTLINK_REG_MAC_HI:
        val = lduw_le_p(mac + 4);
        break;
    case PARTLINK_REG_PORT_ID:
        val = s->port_id;
        break;
    case PARTLINK_REG_SCRATCH:
        val = s->scratch;
        break;
    case PARTLINK_REG_BAD_ACCESS:
        val = s->bad_access;
        break;
    case PARTLINK_REG_TX_RING_LO:
        val = (uint32_t)s->tx_ring_gpa;
        break;
    case PARTLINK_REG_TX_RING_HI:
        val = s->tx_ring_gpa >> 32;
        break;
    case PARTLINK_REG_TX_RING_SIZE:
        val = s->tx_ring_size;
        break;
    case PARTLINK_REG_RX_RING_LO:
        val = (uint32_t)s->rx_ring_gpa;
        break;
    case PARTLINK_REG_RX_RING_HI:
        val = s->rx_ring_gpa >> 32;
        break;
    case PARTLINK_REG_RX_RING_SIZE:
        val = s->rx_ring_size;
        break;
    case PARTLINK_REG_IRQ_CTRL:
        val = s->irq_ctrl;
        break;
    case PARTLINK_REG_LINK:
        val = partlink_link_reg(s);
        break;
    case PARTLINK_REG_MAX_PACKET:
        val = PARTLINK_MAX_PACKET;
        break;
    case PARTLINK_REG_NOTIFY_LO:
        val = (uint32_t)s->notify_gpa;
        break;
    case PARTLINK_REG_NOTIFY_HI:
        val = s->notify_gpa >> 32;
        break;
    case PARTLINK_REG_COUNTERS ...
         PARTLINK_REG_COUNTERS + 8 * PARTLINK_NR_COUNTERS - 1: {
        unsigned idx = (addr - PARTLINK_REG_COUNTERS) / 8;
        uint64_t ctr = qatomic_read(&s->counters[idx]);

        /* The high word is the one of the moment the low word was read. */
        if (addr & 4) {
            val = s->counter_hi_latch;
        } else {
            val = (uint32_t)ctr;
            s->counter_hi_latch = ctr >> 32;
        }
        break;
    }
    case PARTLINK_REG_MBOX_REQUEST ... PARTLINK_REG_MBOX_STATUS + 3:
        if (!partlink_mbox_read(s, addr, &val)) {
            partlink_bad_access(s, addr, size, "read of write-only register");
        }
        break;
    default:
        if (!partlink_seg_read(s, addr, &val)) {
            partlink_bad_access(s, addr, size, "read of unknown register");
            val = 0;
        }
        break;
    }
    trace_partlink_reg_read(addr, val);
    return val;
}

static void partlink_reset_state(PartlinkState *s)
{
    s->drv_features = 0;
    s->status = 0;
    s->scratch = 0;
    s->irq_ctrl = 0;
    s->tx_ring_gpa = 0;
    s->tx_ring_size = 0;
    s->tx_ring = NULL;
    s->tx_pos = 0;
    s->tx_irq_pos = 0;
    s->rx_ring_gpa = 0;
    s->rx_ring_size = 0;
    s->notify_gpa = 0;
    s->notify = NULL;
    s->rx_published = false;
    s->rx_head_saved = false;
    partlink_mbox_reset(s);
    /* From here on no peer writes into this guest's RAM. */
    partlink_fabric_publish_rx(s);
}

static bool partlink_ring_ok(uint64_t gpa, uint32_t size)
{
    return is_power_of_2(size) && size >= PARTLINK_RING_MIN &&
           size <= PARTLINK_RING_MAX && !(gpa % PARTLINK_RING_ALIGN);
}

static bool partlink_overlap(uint64_t a, uint64_t a_len, uint64_t b,
                             uint64_t b_len)
{
    return a < b + b_len && b < a + a_len;
}

/*
 * Rings and the notify area must be wholly in RAM and apart; checked
 * once, at DRIVER_OK.
 */
static bool partlink_rings_check(PartlinkState *s)
{
    uint64_t tx_len = (uint64_t)s->tx_ring_size * PARTLINK_DESC_SIZE;
    uint64_t rx_len = (uint64_t)s->rx_ring_size * PARTLINK_DESC_SIZE;
    Error *err = NULL;

    if (!partlink_ram_layout_own(&s->ram, s->ram_fds, &s->nr_ram_fds, &err)) {
        error_free(err);
        return false;
    }
    if (!partlink_ring_ok(s->tx_ring_gpa, s->tx_ring_size) ||
        !partlink_ring_ok(s->rx_ring_gpa, s->rx_ring_size)) {
        return false;
    }
    if (s->notify_gpa % PARTLINK_RING_ALIGN) {
        return false;
    }
    s->tx_ring = partlink_ram_translate(&s->ram, s->tx_ring_gpa, tx_len);
    s->notify = partlink_ram_translate(&s->ram, s->notify_gpa,
                                       PARTLINK_NOTIFY_SIZE);
    if (!s->tx_ring || !s->notify ||
        !partlink_ram_translate(&s->ram, s->rx_ring_gpa, rx_len) ||
        partlink_overlap(s->tx_ring_gpa, tx_len, s->rx_ring_gpa, rx_len) ||
        partlink_overlap(s->notify_gpa, PARTLINK_NOTIFY_SIZE,
                         s->tx_ring_gpa, tx_len) ||
        partlink_overlap(s->notify_gpa, PARTLINK_NOTIFY_SIZE,
                         s->rx_ring_gpa, rx_len)) {
        s->tx_ring = NULL;
        s->notify = NULL;
        return false;
    }
    return true;
}

/*
 * FAILED, once set, stays until the driver resets the device: the driver
 * must be able to read back that its configuration was refused.
 */
static void partlink_write_status(PartlinkState *s, hwaddr addr,
                                  unsigned size, uint64_t val)
{
    if (val == 0) {
        partlink_reset_state(s);
        trace_partlink_reset("driver");
        return;
    }
    if (val & ~(uint64_t)PARTLINK_STATUS_MASK) {
        partlink_bad_access(s, addr, size, "unknown status bits");
        return;
    }
    if ((val & PARTLINK_STATUS_DRIVER_OK) &&
        !(val & PARTLINK_STATUS_ACKNOWLEDGE)) {
        partlink_bad_access(s, addr, size, "DRIVER_OK without ACKNOWLEDGE");
        return;
    }
    if ((s->status & PARTLINK_STATUS_FAILED || val & PARTLINK_STATUS_FAILED) &&
        (val & PARTLINK_STATUS_DRIVER_OK)) {
        partlink_bad_access(s, addr, size, "DRIVER_OK on a failed device");
        return;
    }
    if ((s->status & PARTLINK_STATUS_DRIVER_OK) &&
        !(val & PARTLINK_STATUS_DRIVER_OK)) {
        partlink_bad_access(s, addr, size, "DRIVER_OK cleared without reset");
        return;
    }
    if ((val & PARTLINK_STATUS_DRIVER_OK) &&
        !(s->status & PARTLINK_STATUS_DRIVER_OK)) {
        if (!partlink_rings_check(s)) {
            partlink_count(s, PARTLINK_CTR_BAD_DESCRIPTORS, 1);
            partlink_bad_access(s, addr, size, "rings misplaced");
            s->status |= PARTLINK_STATUS_FAILED;
            return;
        }
        s->tx_pos = 0;
        s->tx_irq_pos = 0;
        s->status = val;
        s->rx_published = false;
        trace_partlink_rings(s->tx_ring_gpa, s->tx_ring_size, s->rx_ring_gpa,
                             s->rx_ring_size);
        partlink_fabric_publish_rx(s);
        partlink_tx_wake(s);
        return;
    }
    s->status = val | (s->status & PARTLINK_STATUS_FAILED);
}

/* Ring registers are frozen while the device uses the rings. */
static bool partlink_write_ring(PartlinkState *s, hwaddr addr,
                                unsigned size, uint64_t val)
{
    if (s->status & PARTLINK_STATUS_DRIVER_OK) {
        partlink_bad_access(s, addr, size, "ring changed while live");
        return true;
    }
    switch (addr) {
    case PARTLINK_REG_TX_RING_LO:
        s->tx_ring_gpa = deposit64(s->tx_ring_gpa, 0, 32, val);
        return true;
    case PARTLINK_REG_TX_RING_HI:
        s->tx_ring_gpa = deposit64(s->tx_ring_gpa, 32, 32, val);
        return true;
    case PARTLINK_REG_TX_RING_SIZE:
        s->tx_ring_size = val;
        return true;
    case PARTLINK_REG_RX_RING_LO:
        s->rx_ring_gpa = deposit64(s->rx_ring_gpa, 0, 32, val);
        return true;
    case PARTLINK_REG_RX_RING_HI:
        s->rx_ring_gpa = deposit64(s->rx_ring_gpa, 32, 32, val);
        return true;
    case PARTLINK_REG_RX_RING_SIZE:
        s->rx_ring_size = val;
        return true;
    case PARTLINK_REG_NOTIFY_LO:
        s->notify_gpa = deposit64(s->notify_gpa, 0, 32, val);
        return true;
    case PARTLINK_REG_NOTIFY_HI:
        s->notify_gpa = deposit64(s->notify_gpa, 32, 32, val);
        return true;
    }
    return false;
}

static void partlink_write_irq_ctrl(PartlinkState *s, hwaddr addr,
                                    unsigned size, uint64_t val)
{
    if (val & ~(uint64_t)(PARTLINK_IRQ_DATA | PARTLINK_IRQ_LINK |
                          PARTLINK_IRQ_SEG)) {
        partlink_bad_access(s, addr, size, "unknown IRQ_CTRL bits");
        return;
    }
    /* Rings that came in while the vector was off are not lost. */
    if ((val & ~s->irq_ctrl & PARTLINK_IRQ_SEG) && s->seg_pending) {
        msix_notify(PCI_DEVICE(s), PARTLINK_VEC_SEG);
    }
    s->irq_ctrl = val;
}

static void partlink_reg_write(void *opaque, hwaddr addr, uint64_t val,
                               unsigned size)
{
    PartlinkState *s = opaque;

    trace_partlink_reg_write(addr, val);
    if (size != 4) {
        partlink_bad_access(s, addr, size, "write not 32 bits wide");
        return;
    }
    if (addr >= PARTLINK_REG_MBOX_REQUEST &&
        addr <= PARTLINK_REG_MBOX_STATUS + 3) {
        /* Not under tx_lock: a failed send closes the chardev at once. */
        partlink_mbox_write(s, addr, size, val);
        return;
    }
    /* Segments are the BQL's; the TX thread never sees them. */
    switch (partlink_seg_write(s, addr, val)) {
    case PARTLINK_SEG_WRITE_DONE:
        return;
    case PARTLINK_SEG_WRITE_REFUSED:
        partlink_bad_access(s, addr, size, "SEG_ACK ahead of SEG_GENERATION");
        return;
    case PARTLINK_SEG_WRITE_NOT_MINE:
        break;
    }
    QEMU_LOCK_GUARD(&s->tx_lock);
    switch (addr) {
    case PARTLINK_REG_DRV_FEATURES:
        if (s->status & PARTLINK_STATUS_DRIVER_OK) {
            partlink_bad_access(s, addr, size, "features changed while the "
                                "device is live");
            break;
        }
        /* A driver cannot accept what the device did not offer. */
        if (val & ~(uint64_t)PARTLINK_FEATURES) {
            partlink_bad_access(s, addr, size, "unoffered feature accepted");
            s->status |= PARTLINK_STATUS_FAILED;
            break;
        }
        if ((val & PARTLINK_F_GSO) && !(val & PARTLINK_F_CSUM)) {
            partlink_bad_access(s, addr, size, "GSO without CSUM");
            s->status |= PARTLINK_STATUS_FAILED;
            break;
        }
        s->drv_features = val;
        break;
    case PARTLINK_REG_STATUS:
        partlink_write_status(s, addr, size, val);
        break;
    case PARTLINK_REG_SCRATCH:
        s->scratch = val;
        break;
    case PARTLINK_REG_IRQ_CTRL:
        partlink_write_irq_ctrl(s, addr, size, val);
        break;
    default:
        if (partlink_write_ring(s, addr, size, val)) {
            break;
        }
        partlink_bad_access(s, addr, size, "write to read-only or unknown "
                            "register");
        break;
    }
}

static const MemoryRegionOps partlink_reg_ops = {
    .read = partlink_reg_read,
    .write = partlink_reg_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    /*
     * Let every aligned size reach the handlers, so that a driver's wrong
     * access width is counted rather than silently widened by the core.
     */
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
};

/*
 * Peers copy packets straight into this guest's RAM through its file
 * descriptor, so the RAM must be a shareable, fd-backed memory backend.
 */
static bool partlink_ram_is_shareable(Error **errp)
{
    ERRP_GUARD();
    MachineState *ms = MACHINE(qdev_get_machine());

    /* With -numa memdev=, ms->ram is a container without a RAM block. */
    if (!ms->ram || !memory_region_is_ram(ms->ram) || !ms->ram->ram_block ||
        memory_region_get_fd(ms->ram) < 0 ||
        !qemu_ram_is_shared(ms->ram->ram_block)) {
        error_setg(errp, "partlink-pci needs guest RAM that peers can map");
        error_append_hint(errp, "Use one shared memory backend, without "
                          "-numa: -object memory-backend-memfd,id=ram,"
                          "size=<size>,share=on -machine memory-backend=ram\n");
        return false;
    }
    return true;
}

/*
 * Clearing Bus Master Enable stops the device's DMA: the TX thread leaves
 * the ring alone and peers no longer fill the RX ring, until it is set
 * again.
 */
static void partlink_config_write(PCIDevice *pdev, uint32_t addr,
                                  uint32_t val, int len)
{
    PartlinkState *s = PARTLINK_PCI(pdev);
    bool master;

    pci_default_write_config(pdev, addr, val, len);
    master = pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER;
    if (master == s->bus_master) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
        s->bus_master = master;
        trace_partlink_bus_master(s->port_id, master);
        partlink_fabric_publish_rx(s);
    }
    partlink_tx_wake(s);
}

static void partlink_use_vectors(PartlinkState *s)
{
    unsigned i;

    for (i = 0; i < PARTLINK_NR_VECTORS; i++) {
        msix_vector_use(PCI_DEVICE(s), i);
    }
}

static void partlink_realize(PCIDevice *pdev, Error **errp)
{
    ERRP_GUARD();
    static const MACAddr zero_mac;
    PartlinkState *s = PARTLINK_PCI(pdev);

    /* Peers route to this adapter by its MAC: it must be a unicast one. */
    if (is_multicast_ether_addr(s->mac.a) ||
        !memcmp(&s->mac, &zero_mac, sizeof(zero_mac))) {
        error_setg(errp, "partlink-pci: mac must be a unicast, non-zero "
                   "address");
        return;
    }
    if (!partlink_ram_is_shareable(errp)) {
        return;
    }
    /* The device uses guest-physical addresses; an IOMMU would remap them. */
    if (pci_device_iommu_address_space(pdev) != &address_space_memory) {
        error_setg(errp, "partlink-pci does not work behind a virtual IOMMU");
        return;
    }

    /* Dirty tracking cannot see a peer's writes into our RAM. */
    error_setg(&s->migration_blocker, "partlink-pci: peers write into this "
               "guest's RAM behind QEMU's dirty page tracking");
    if (migrate_add_blocker(&s->migration_blocker, errp) < 0) {
        return;
    }

    memory_region_init_io(&s->regs, OBJECT(s), &partlink_reg_ops, s,
                          "partlink-regs", PARTLINK_REG_BAR_SIZE);
    pci_register_bar(pdev, PARTLINK_REG_BAR, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->regs);
    if (msix_init_exclusive_bar(pdev, PARTLINK_NR_VECTORS, PARTLINK_MSIX_BAR,
                                errp)) {
        goto fail_blocker;
    }
    partlink_seg_realize(s, errp);
    if (*errp) {
        goto fail_msix_bar;
    }
    partlink_mbox_realize(s);
    partlink_tx_realize(s, errp);
    if (*errp) {
        goto fail_mbox;
    }
    partlink_fabric_realize(s, errp);
    if (*errp) {
        goto fail_msix;
    }
    partlink_use_vectors(s);
    trace_partlink_realize(s->port_id, s->mac.a[0], s->mac.a[1], s->mac.a[2],
                           s->mac.a[3], s->mac.a[4], s->mac.a[5]);
    return;

fail_msix:
    partlink_tx_unrealize(s);
    partlink_fabric_unrealize(s);
fail_mbox:
    partlink_mbox_unrealize(s);
    partlink_seg_unrealize(s);
fail_msix_bar:
    msix_uninit_exclusive_bar(pdev);
fail_blocker:
    migrate_del_blocker(&s->migration_blocker);
}

static void partlink_exit(PCIDevice *pdev)
{
    PartlinkState *s = PARTLINK_PCI(pdev);

    partlink_tx_unrealize(s);
    partlink_reset_state(s);
    partlink_fabric_unrealize(s);
    partlink_mbox_unrealize(s);
    partlink_seg_unrealize(s);
    msix_uninit_exclusive_bar(pdev);
    migrate_del_blocker(&s->migration_blocker);
}

static void partlink_reset_hold(Object *obj, ResetType type)
{
    PartlinkState *s = PARTLINK_PCI(obj);

    WITH_QEMU_LOCK_GUARD(&s->tx_lock) {
        s->bus_master = false;
        partlink_reset_state(s);
    }
    s->bad_access = 0;
    partlink_seg_reset(s);
    partlink_use_vectors(s);
    trace_partlink_reset("system");
}

static void partlink_instance_init(Object *obj)
{
    PartlinkState *s = PARTLINK_PCI(obj);

    /* A locally administered unicast default; the launcher sets its own. */
    static const MACAddr default_mac = {
        .a = { 0x02, 0x70, 0x6c, 0x00, 0x00, 0x01 },
    };
    s->mac = default_mac;
}

static const Property partlink_properties[] = {
    DEFINE_PROP_MACADDR("mac", PartlinkState, mac),
    DEFINE_PROP_UINT32("port", PartlinkState, port_id, 0),
    DEFINE_PROP_STRING("name", PartlinkState, name),
    DEFINE_PROP_CHR("chardev", PartlinkState, chr),
    DEFINE_PROP_UINT32("tx-linger-us", PartlinkState, tx_linger_us, 50),
    DEFINE_PROP_UINT32("tx-irq-gap-us", PartlinkState, tx_irq_gap_us, 100),
    DEFINE_PROP_SIZE("segment-window", PartlinkState, seg_window_size,
                     1 * GiB),
};

static void partlink_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = partlink_realize;
    k->exit = partlink_exit;
    k->config_write = partlink_config_write;
    k->vendor_id = PARTLINK_PCI_VENDOR_ID;
    k->device_id = PARTLINK_PCI_DEVICE_ID;
    k->revision = PARTLINK_PCI_REVISION;
    k->class_id = PARTLINK_PCI_CLASS;
    dc->desc = "partlink inter-partition adapter";
    rc->phases.hold = partlink_reset_hold;
    device_class_set_props(dc, partlink_properties);
    set_bit(DEVICE_CATEGORY_NETWORK, dc->categories);
}

static const TypeInfo partlink_types[] = {
    {
        .name = TYPE_PARTLINK_PCI,
        .parent = TYPE_PCI_DEVICE,
        .instance_size = sizeof(PartlinkState),
        .instance_init = partlink_instance_init,
        .class_init = partlink_class_init,
        .interfaces = (InterfaceInfo[]) {
            { INTERFACE_CONVENTIONAL_PCI_DEVICE },
            { },
        },
    },
};

DEFINE_TYPES(partlink_types)
