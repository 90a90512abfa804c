// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: driver for the partlink-pci inter-partition adapter
 *
 * The adapter moves a packet from one partition's memory straight into
 * another partition's memory.  This is the PCI part of the driver: it
 * finds the device, checks that it speaks our ABI, takes it through the
 * status handshake and reports its identity.  The network interface and
 * the hypervisor mailbox are built on top of it.
 *
 * The register layout is in <partlink/partlink_abi.h>, shared with the
 * device model; docs/spec.md describes it.
 */

#include <linux/etherdevice.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>

#include <partlink/partlink_abi.h>

#define PARTLINK_DRV_NAME	"partlink"

/* Written to the scratch register and read back to prove BAR 0 works. */
#define PARTLINK_SCRATCH_PATTERN	0x5a5aa5a5

struct partlink_dev {
	struct pci_dev *pdev;
	void __iomem *regs;
	u32 features;
	u32 port_id;
	u8 mac[ETH_ALEN];
};

static u32 partlink_rd(struct partlink_dev *pl, unsigned int reg)
{
	return ioread32(pl->regs + reg);
}

static void partlink_wr(struct partlink_dev *pl, unsigned int reg, u32 val)
{
	iowrite32(val, pl->regs + reg);
}

static void partlink_reset(struct partlink_dev *pl)
{
	partlink_wr(pl, PARTLINK_REG_STATUS, 0);
	/* Read back so that the reset has reached the device on return. */
	partlink_rd(pl, PARTLINK_REG_STATUS);
}

/* Write a new device status and check that the device accepted it. */
static int partlink_set_status(struct partlink_dev *pl, u32 status)
{
	u32 now;

	partlink_wr(pl, PARTLINK_REG_STATUS, status);
	now = partlink_rd(pl, PARTLINK_REG_STATUS);
	if (now != status) {
		dev_err(&pl->pdev->dev,
			"device refused status %#x (status reads %#x)\n",
			status, now);
		return -EIO;
	}
	return 0;
}

static int partlink_check_abi(struct partlink_dev *pl)
{
	struct device *dev = &pl->pdev->dev;
	u32 magic, version, scratch;

	magic = partlink_rd(pl, PARTLINK_REG_MAGIC);
	if (magic != PARTLINK_MAGIC) {
		dev_err(dev, "bad magic %#010x, expected %#010x: not a partlink device\n",
			magic, PARTLINK_MAGIC);
		return -ENODEV;
	}

	version = partlink_rd(pl, PARTLINK_REG_VERSION);
	if (version != PARTLINK_ABI_VERSION) {
		dev_err(dev, "device speaks ABI version %u, driver speaks %u\n",
			version, PARTLINK_ABI_VERSION);
		return -ENODEV;
	}

	partlink_wr(pl, PARTLINK_REG_SCRATCH, PARTLINK_SCRATCH_PATTERN);
	scratch = partlink_rd(pl, PARTLINK_REG_SCRATCH);
	if (scratch != PARTLINK_SCRATCH_PATTERN) {
		dev_err(dev, "scratch register reads %#010x, wrote %#010x\n",
			scratch, PARTLINK_SCRATCH_PATTERN);
		return -EIO;
	}
	partlink_wr(pl, PARTLINK_REG_SCRATCH, 0);

	return 0;
}

static void partlink_read_identity(struct partlink_dev *pl)
{
	u32 lo = partlink_rd(pl, PARTLINK_REG_MAC_LO);
	u32 hi = partlink_rd(pl, PARTLINK_REG_MAC_HI);

	/* MAC byte 0 is the least significant byte of MAC_LO. */
	pl->mac[0] = lo & 0xff;
	pl->mac[1] = (lo >> 8) & 0xff;
	pl->mac[2] = (lo >> 16) & 0xff;
	pl->mac[3] = (lo >> 24) & 0xff;
	pl->mac[4] = hi & 0xff;
	pl->mac[5] = (hi >> 8) & 0xff;

	pl->port_id = partlink_rd(pl, PARTLINK_REG_PORT_ID);
}

static int partlink_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct partlink_dev *pl;
	int err;

	pl = devm_kzalloc(dev, sizeof(*pl), GFP_KERNEL);
	if (!pl)
		return -ENOMEM;
	pl->pdev = pdev;

	err = pcim_enable_device(pdev);
	if (err) {
		dev_err(dev, "cannot enable PCI device: %d\n", err);
		return err;
	}

	if (!(pci_resource_flags(pdev, PARTLINK_REG_BAR) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, PARTLINK_REG_BAR) < PARTLINK_REG_BAR_SIZE) {
		dev_err(dev, "BAR %d is not a %#x byte memory BAR\n",
			PARTLINK_REG_BAR, PARTLINK_REG_BAR_SIZE);
		return -ENODEV;
	}

	err = pcim_iomap_regions(pdev, BIT(PARTLINK_REG_BAR), PARTLINK_DRV_NAME);
	if (err) {
		dev_err(dev, "cannot map BAR %d: %d\n", PARTLINK_REG_BAR, err);
		return err;
	}
	pl->regs = pcim_iomap_table(pdev)[PARTLINK_REG_BAR];

	err = partlink_check_abi(pl);
	if (err)
		return err;

	/* Start from a clean device, whatever a previous driver left. */
	partlink_reset(pl);

	err = partlink_set_status(pl, PARTLINK_STATUS_ACKNOWLEDGE);
	if (err)
		goto fail;

	/* ABI version 1 defines no features; accept only what we know. */
	pl->features = partlink_rd(pl, PARTLINK_REG_DEV_FEATURES) &
		       PARTLINK_FEATURES_V1;
	partlink_wr(pl, PARTLINK_REG_DRV_FEATURES, pl->features);

	partlink_read_identity(pl);
	if (!is_valid_ether_addr(pl->mac))
		dev_warn(dev, "device MAC %pM is not a valid unicast address\n",
			 pl->mac);

	err = partlink_set_status(pl, PARTLINK_STATUS_ACKNOWLEDGE |
				      PARTLINK_STATUS_DRIVER_OK);
	if (err)
		goto fail;

	pci_set_drvdata(pdev, pl);
	dev_info(dev, "ABI %u, port %u, MAC %pM\n",
		 PARTLINK_ABI_VERSION, pl->port_id, pl->mac);
	return 0;

fail:
	partlink_wr(pl, PARTLINK_REG_STATUS, PARTLINK_STATUS_FAILED);
	return err;
}

static void partlink_remove(struct pci_dev *pdev)
{
	struct partlink_dev *pl = pci_get_drvdata(pdev);

	partlink_reset(pl);
}

static void partlink_shutdown(struct pci_dev *pdev)
{
	struct partlink_dev *pl = pci_get_drvdata(pdev);

	/* Quiesce the device before kexec or reboot. */
	if (pl)
		partlink_reset(pl);
}

static const struct pci_device_id partlink_pci_ids[] = {
	{ PCI_DEVICE(PARTLINK_PCI_VENDOR_ID, PARTLINK_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, partlink_pci_ids);

static struct pci_driver partlink_pci_driver = {
	.name		= PARTLINK_DRV_NAME,
	.id_table	= partlink_pci_ids,
	.probe		= partlink_probe,
	.remove		= partlink_remove,
	.shutdown	= partlink_shutdown,
};
module_pci_driver(partlink_pci_driver);

MODULE_DESCRIPTION("partlink inter-partition adapter driver");
MODULE_LICENSE("GPL");
