// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: driver for the partlink-pci inter-partition adapter
 *
 * The adapter moves a packet from one partition's memory straight into
 * another partition's memory.  This is the PCI part of the driver: it
 * finds the device, checks that it speaks our ABI, sets up MSI-X, takes
 * the device through the status handshake and follows the fabric link.
 * The network interface is in partlink_netdev.c and partlink_rx.c, the
 * hypervisor mailbox (/dev/partlink-hv) in partlink_hv.c, the shared
 * segments (/dev/partlink/seg/) in partlink_seg.c.
 *
 * The register layout is in <partlink/partlink_abi.h>, shared with the
 * device model; docs/spec.md describes it.
 */

#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/rtnetlink.h>

#include "partlink.h"

/* Written to the scratch register and read back to prove BAR 0 works. */
#define PARTLINK_SCRATCH_PATTERN	0x5a5aa5a5

/*
 * Reset the device.  Once the register write has reached it and STATUS
 * no longer reads RESETTING, the device and every peer have stopped
 * touching our rings and buffers.  The reset also empties the mailbox
 * and drops an answer still to come; the register write is under
 * reset_lock, so that the mailbox never sends a request a reset zeroed
 * (see partlink_hv_exchange()).  The reset clears IRQ_CTRL too: the
 * segments, which do not depend on the interface, get their vector back at
 * once.  Sleeps: process context only.
 */
void partlink_reset(struct partlink_dev *pl)
{
	unsigned int waited_ms = 0;
	u32 status;

	spin_lock(&pl->reset_lock);
	partlink_wr(pl, PARTLINK_REG_STATUS, 0);
	/* Read back so that the reset has reached the device on return. */
	status = partlink_rd(pl, PARTLINK_REG_STATUS);
	if (pl->hv)
		partlink_hv_reset(pl->hv);
	spin_unlock(&pl->reset_lock);

	/* DATA and LINK wait for partlink_open(); what SEG missed is kept. */
	partlink_irq_ctrl(pl, 0, PARTLINK_IRQ_DATA | PARTLINK_IRQ_LINK);
	partlink_seg_kick(pl);

	/*
	 * A peer stopped in the middle of a copy into our buffers still holds
	 * our RX lock: no new packet comes in, but that one may still land.
	 * Free nothing until it is out, however long that takes.
	 */
	while (status & PARTLINK_STATUS_RESETTING) {
		if (waited_ms % 10000 == 0)
			dev_warn(&pl->pdev->dev,
				 "reset: waiting %u s for a stopped peer to leave our buffers\n",
				 waited_ms / 1000);
		msleep(20);
		waited_ms += 20;
		status = partlink_rd(pl, PARTLINK_REG_STATUS);
	}
}

/*
 * One device counter.  Reading the low word latches the high word, so
 * the two reads must not interleave with another reader's; any context.
 */
u64 partlink_read_counter(struct partlink_dev *pl, unsigned int idx)
{
	unsigned long flags;
	u32 lo, hi;

	spin_lock_irqsave(&pl->ctr_lock, flags);
	lo = partlink_rd(pl, PARTLINK_REG_COUNTERS + 8 * idx);
	hi = partlink_rd(pl, PARTLINK_REG_COUNTERS + 8 * idx + 4);
	spin_unlock_irqrestore(&pl->ctr_lock, flags);
	return (u64)hi << 32 | lo;
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

/*
 * Take the device from reset to DRIVER_OK with the rings in pl->tx and
 * pl->rx, the RX ring already posted.  On failure the device is left
 * reset.
 */
int partlink_start_device(struct partlink_dev *pl)
{
	int err;

	partlink_reset(pl);

	err = partlink_set_status(pl, PARTLINK_STATUS_ACKNOWLEDGE);
	if (err)
		goto fail;

	partlink_wr(pl, PARTLINK_REG_DRV_FEATURES, pl->features);

	partlink_wr(pl, PARTLINK_REG_TX_RING_LO, lower_32_bits(pl->tx.desc_dma));
	partlink_wr(pl, PARTLINK_REG_TX_RING_HI, upper_32_bits(pl->tx.desc_dma));
	partlink_wr(pl, PARTLINK_REG_TX_RING_SIZE, pl->tx.size);
	partlink_wr(pl, PARTLINK_REG_RX_RING_LO, lower_32_bits(pl->rx.desc_dma));
	partlink_wr(pl, PARTLINK_REG_RX_RING_HI, upper_32_bits(pl->rx.desc_dma));
	partlink_wr(pl, PARTLINK_REG_RX_RING_SIZE, pl->rx.size);
	partlink_wr(pl, PARTLINK_REG_NOTIFY_LO, lower_32_bits(pl->notify_dma));
	partlink_wr(pl, PARTLINK_REG_NOTIFY_HI, upper_32_bits(pl->notify_dma));

	/* The device checks the rings now: FAILED means it refused them. */
	err = partlink_set_status(pl, PARTLINK_STATUS_ACKNOWLEDGE |
				      PARTLINK_STATUS_DRIVER_OK);
	if (err)
		goto fail;

	pl->port_id = partlink_rd(pl, PARTLINK_REG_PORT_ID);
	return 0;

fail:
	partlink_reset(pl);
	return err;
}

/* Follow the LINK register: carrier and the number of reachable peers. */
void partlink_update_link(struct partlink_dev *pl)
{
	unsigned long flags;
	u32 link;

	spin_lock_irqsave(&pl->link_lock, flags);
	link = partlink_rd(pl, PARTLINK_REG_LINK);
	WRITE_ONCE(pl->link, link);
	if (link & PARTLINK_LINK_UP)
		netif_carrier_on(pl->netdev);
	else
		netif_carrier_off(pl->netdev);
	spin_unlock_irqrestore(&pl->link_lock, flags);
}

irqreturn_t partlink_link_irq(int irq, void *data)
{
	partlink_update_link(data);
	return IRQ_HANDLED;
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

/* Read what the device offers: features, MAC, largest frame. */
static int partlink_read_identity(struct partlink_dev *pl)
{
	struct device *dev = &pl->pdev->dev;
	u8 mac[ETH_ALEN];
	u32 lo, hi;
	int err;

	partlink_reset(pl);
	err = partlink_set_status(pl, PARTLINK_STATUS_ACKNOWLEDGE);
	if (err)
		return err;
	pl->features = partlink_rd(pl, PARTLINK_REG_DEV_FEATURES) &
		       PARTLINK_FEATURES;
	/* GSO is defined only together with CSUM. */
	if (!(pl->features & PARTLINK_F_CSUM))
		pl->features &= ~PARTLINK_F_GSO;

	/* MAC byte 0 is the least significant byte of MAC_LO. */
	lo = partlink_rd(pl, PARTLINK_REG_MAC_LO);
	hi = partlink_rd(pl, PARTLINK_REG_MAC_HI);
	mac[0] = lo & 0xff;
	mac[1] = (lo >> 8) & 0xff;
	mac[2] = (lo >> 16) & 0xff;
	mac[3] = (lo >> 24) & 0xff;
	mac[4] = hi & 0xff;
	mac[5] = (hi >> 8) & 0xff;

	pl->port_id = partlink_rd(pl, PARTLINK_REG_PORT_ID);
	pl->max_packet = min_t(u32, partlink_rd(pl, PARTLINK_REG_MAX_PACKET),
			       PARTLINK_MAX_PACKET);
	partlink_reset(pl);

	/* The device drops every frame whose source is not this MAC. */
	if (!is_valid_ether_addr(mac)) {
		dev_err(dev, "device MAC %pM is not a valid unicast address\n",
			mac);
		return -EINVAL;
	}
	eth_hw_addr_set(pl->netdev, mac);

	if (pl->max_packet < ETH_HLEN + ETH_MIN_MTU) {
		dev_err(dev, "device carries frames of %u bytes, need %u\n",
			pl->max_packet, ETH_HLEN + ETH_MIN_MTU);
		return -EINVAL;
	}
	return 0;
}

static int partlink_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct net_device *netdev;
	struct partlink_dev *pl;
	int err;

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

	err = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (err) {
		dev_err(dev, "no usable DMA configuration: %d\n", err);
		return err;
	}
	pci_set_master(pdev);

	netdev = alloc_netdev(sizeof(*pl), "pl%d", NET_NAME_ENUM, ether_setup);
	if (!netdev)
		return -ENOMEM;
	SET_NETDEV_DEV(netdev, dev);

	pl = netdev_priv(netdev);
	pl->netdev = netdev;
	pl->pdev = pdev;
	pl->regs = pcim_iomap_table(pdev)[PARTLINK_REG_BAR];
	spin_lock_init(&pl->link_lock);
	spin_lock_init(&pl->irq_lock);
	spin_lock_init(&pl->ctr_lock);
	spin_lock_init(&pl->reset_lock);
	u64_stats_init(&pl->tx.syncp);
	u64_stats_init(&pl->rx.syncp);
	INIT_DELAYED_WORK(&pl->refill_work, partlink_refill_work);
	spin_lock_init(&pl->refill_lock);
	pl->tx_ring_size = PARTLINK_TX_RING_SIZE;
	pl->rx_ring_size = PARTLINK_RX_RING_SIZE;
	pci_set_drvdata(pdev, pl);

	err = partlink_check_abi(pl);
	if (err)
		goto err_free_netdev;

	err = partlink_read_identity(pl);
	if (err)
		goto err_failed;

	err = pci_alloc_irq_vectors(pdev, PARTLINK_NR_VECTORS,
				    PARTLINK_NR_VECTORS, PCI_IRQ_MSIX);
	if (err < 0) {
		dev_err(dev, "cannot get %d MSI-X vectors: %d\n",
			PARTLINK_NR_VECTORS, err);
		goto err_failed;
	}

	/* The mailbox works whether or not the interface is up. */
	err = partlink_hv_probe(pl);
	if (err)
		goto err_free_vectors;

	/* So do the segments; and the interface works without them. */
	err = partlink_seg_probe(pl);
	if (err)
		dev_warn(dev, "no shared segments: %d\n", err);

	netif_napi_add(netdev, &pl->napi, partlink_poll);
	partlink_netdev_setup(pl);
	partlink_set_ethtool_ops(netdev);
	netif_carrier_off(netdev);

	err = register_netdev(netdev);
	if (err) {
		dev_err(dev, "cannot register the network interface: %d\n",
			err);
		goto err_seg;
	}

	netdev_info(netdev, "partlink ABI %u, port %u, MAC %pM, features %#x, frames up to %u bytes\n",
		    PARTLINK_ABI_VERSION, pl->port_id, netdev->dev_addr,
		    pl->features, pl->max_packet);
	return 0;

err_seg:
	partlink_seg_remove(pl);
	partlink_hv_remove(pl);
err_free_vectors:
	pci_free_irq_vectors(pdev);
err_failed:
	partlink_wr(pl, PARTLINK_REG_STATUS, PARTLINK_STATUS_FAILED);
err_free_netdev:
	free_netdev(netdev);
	return err;
}

static void partlink_remove(struct pci_dev *pdev)
{
	struct partlink_dev *pl = pci_get_drvdata(pdev);

	/* Closes the interface: the device is reset, the rings freed. */
	unregister_netdev(pl->netdev);
	/* Waits for a mailbox exchange in flight; open files get ENODEV. */
	partlink_hv_remove(pl);
	/*
	 * After the interface, whose resets would re-enable SEG: revokes every
	 * segment; its files get ENODEV, its mappings SIGBUS.
	 */
	partlink_seg_remove(pl);
	partlink_reset(pl);
	pci_free_irq_vectors(pdev);
	free_netdev(pl->netdev);
}

static void partlink_shutdown(struct pci_dev *pdev)
{
	struct partlink_dev *pl = pci_get_drvdata(pdev);

	/* Quiesce the device before kexec or reboot. */
	rtnl_lock();
	netif_device_detach(pl->netdev);
	if (netif_running(pl->netdev))
		dev_close(pl->netdev);
	rtnl_unlock();
	/* Keep the reset from enabling SEG again. */
	partlink_irq_ctrl(pl, 0, PARTLINK_IRQ_SEG);
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

static int __init partlink_init(void)
{
	int err;

	/* The segments' class and minors, before any adapter's probe */
	err = partlink_seg_init();
	if (err)
		return err;
	err = pci_register_driver(&partlink_pci_driver);
	if (err)
		partlink_seg_exit();
	return err;
}
module_init(partlink_init);

static void __exit partlink_exit(void)
{
	pci_unregister_driver(&partlink_pci_driver);
	partlink_seg_exit();
}
module_exit(partlink_exit);

MODULE_DESCRIPTION("partlink inter-partition adapter driver");
MODULE_LICENSE("GPL");
