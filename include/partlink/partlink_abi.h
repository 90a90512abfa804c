/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * partlink device ABI: the contract between the partlink-pci device model,
 * the guest driver and the tests.  docs/spec.md describes every field; change
 * both together, and bump PARTLINK_ABI_VERSION on any incompatible change.
 *
 * All registers are little-endian and 32 bits wide; a guest may only access
 * them with aligned 32-bit loads and stores.
 */
#ifndef PARTLINK_ABI_H
#define PARTLINK_ABI_H

/*
 * PCI identity.  0x1234 is the vendor ID QEMU uses for its own experimental
 * devices (edu, bochs-display); the device ID is ours.
 */
#define PARTLINK_PCI_VENDOR_ID		0x1234
#define PARTLINK_PCI_DEVICE_ID		0x7071
#define PARTLINK_PCI_REVISION		0x01
#define PARTLINK_PCI_CLASS		0x0200	/* network, Ethernet */

#define PARTLINK_ABI_VERSION		1

/* BAR 0: registers */
#define PARTLINK_REG_BAR		0
#define PARTLINK_REG_BAR_SIZE		0x1000

/* Register offsets in BAR 0 */
#define PARTLINK_REG_MAGIC		0x000	/* RO: PARTLINK_MAGIC */
#define PARTLINK_REG_VERSION		0x004	/* RO: PARTLINK_ABI_VERSION */
#define PARTLINK_REG_DEV_FEATURES	0x008	/* RO: features offered */
#define PARTLINK_REG_DRV_FEATURES	0x00c	/* RW: features accepted */
#define PARTLINK_REG_STATUS		0x010	/* RW: PARTLINK_STATUS_* */
#define PARTLINK_REG_MAC_LO		0x014	/* RO: MAC bytes 0..3 */
#define PARTLINK_REG_MAC_HI		0x018	/* RO: MAC bytes 4..5 */
#define PARTLINK_REG_PORT_ID		0x01c	/* RO: fabric port number */
#define PARTLINK_REG_SCRATCH		0x020	/* RW: driver self-test */
#define PARTLINK_REG_BAD_ACCESS		0x024	/* RO: rejected accesses */

/* "PLNK" read as a little-endian 32-bit value */
#define PARTLINK_MAGIC			0x4b4e4c50

/*
 * Device status, written by the driver in this order, read back to check
 * that the device accepted it.  Writing 0 resets the device.
 */
#define PARTLINK_STATUS_ACKNOWLEDGE	(1u << 0)	/* driver found it */
#define PARTLINK_STATUS_DRIVER_OK	(1u << 1)	/* driver is ready */
#define PARTLINK_STATUS_FAILED		(1u << 7)	/* driver gave up */
#define PARTLINK_STATUS_MASK		(PARTLINK_STATUS_ACKNOWLEDGE | \
					 PARTLINK_STATUS_DRIVER_OK | \
					 PARTLINK_STATUS_FAILED)

/* Feature bits: none defined in ABI version 1. */
#define PARTLINK_FEATURES_V1		0u

#endif /* PARTLINK_ABI_H */
