/*
 * partlink-pci: inter-partition adapter
 *
 * A PCI network adapter that lets partitions (guests) exchange packets by
 * copying each packet once, from the sender's RAM straight into a receive
 * buffer the destination posted.  This revision implements the identity
 * and control registers of docs/spec.md; the packet path builds on them.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "exec/cpu-common.h"
#include "exec/memory.h"
#include "hw/boards.h"
#include "hw/pci/pci_device.h"
#include "hw/qdev-properties.h"
#include "migration/blocker.h"
#include "net/eth.h"
#include "qapi/error.h"
#include "net/net.h"
#include "qom/object.h"
#include "trace.h"

#include "partlink/partlink_abi.h"

#define TYPE_PARTLINK_PCI "partlink-pci"
OBJECT_DECLARE_SIMPLE_TYPE(PartlinkState, PARTLINK_PCI)

struct PartlinkState {
    PCIDevice parent_obj;

    MemoryRegion regs;
    Error *migration_blocker;

    /* properties */
    MACAddr mac;
    uint32_t port_id;

    /* driver-visible state */
    uint32_t drv_features;
    uint32_t status;
    uint32_t scratch;
    uint32_t bad_access;
};

static void partlink_bad_access(PartlinkState *s, hwaddr addr, unsigned size,
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
        val = PARTLINK_FEATURES_V1;
        break;
    case PARTLINK_REG_DRV_FEATURES:
        val = s->drv_features;
        break;
    case PARTLINK_REG_STATUS:
        val = s->status;
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
    default:
        partlink_bad_access(s, addr, size, "read of unknown register");
        val = 0;
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
    if ((s->status & PARTLINK_STATUS_FAILED) &&
        (val & PARTLINK_STATUS_DRIVER_OK)) {
        partlink_bad_access(s, addr, size, "DRIVER_OK on a failed device");
        return;
    }
    s->status = val | (s->status & PARTLINK_STATUS_FAILED);
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
    switch (addr) {
    case PARTLINK_REG_DRV_FEATURES:
        if (s->status & PARTLINK_STATUS_DRIVER_OK) {
            partlink_bad_access(s, addr, size, "features changed while the "
                                "device is live");
            break;
        }
        /* A driver cannot accept what the device did not offer. */
        if (val & ~(uint64_t)PARTLINK_FEATURES_V1) {
            partlink_bad_access(s, addr, size, "unoffered feature accepted");
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
    default:
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

static void partlink_realize(PCIDevice *pdev, Error **errp)
{
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
    trace_partlink_realize(s->port_id, s->mac.a[0], s->mac.a[1], s->mac.a[2],
                           s->mac.a[3], s->mac.a[4], s->mac.a[5]);
}

static void partlink_exit(PCIDevice *pdev)
{
    PartlinkState *s = PARTLINK_PCI(pdev);

    migrate_del_blocker(&s->migration_blocker);
}

static void partlink_reset_hold(Object *obj, ResetType type)
{
    PartlinkState *s = PARTLINK_PCI(obj);

    partlink_reset_state(s);
    s->bad_access = 0;
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
};

static void partlink_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = partlink_realize;
    k->exit = partlink_exit;
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
