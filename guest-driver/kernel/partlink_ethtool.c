// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: ethtool operations
 *
 * ethtool -S shows the device's own counters under their ABI names
 * (tx_packets, copies, rx_no_buffer, ...), then the driver's counters
 * as drv_<name>, then the fabric link, then the shared segments' counters
 * as seg_<name>.
 */

#include <linux/ethtool.h>
#include <linux/log2.h>

#include "partlink.h"

static const char partlink_dev_stat_names[][ETH_GSTRING_LEN] = {
	[PARTLINK_CTR_TX_PACKETS]	= "tx_packets",
	[PARTLINK_CTR_TX_BYTES]		= "tx_bytes",
	[PARTLINK_CTR_RX_PACKETS]	= "rx_packets",
	[PARTLINK_CTR_RX_BYTES]		= "rx_bytes",
	[PARTLINK_CTR_COPIES]		= "copies",
	[PARTLINK_CTR_BYTES_COPIED]	= "bytes_copied",
	[PARTLINK_CTR_RX_NO_BUFFER]	= "rx_no_buffer",
	[PARTLINK_CTR_TX_NO_BUFFER]	= "tx_no_buffer",
	[PARTLINK_CTR_BAD_DESCRIPTORS]	= "bad_descriptors",
	[PARTLINK_CTR_SPOOFED]		= "spoofed",
	[PARTLINK_CTR_NO_ROUTE]		= "no_route",
	[PARTLINK_CTR_TX_KICKS]		= "tx_kicks",
	[PARTLINK_CTR_RX_INTERRUPTS]	= "rx_interrupts",
	[PARTLINK_CTR_LINK_CHANGES]	= "link_changes",
	[PARTLINK_CTR_TX_ERRORS]	= "tx_errors",
	[PARTLINK_CTR_RX_BAD_BUFFER]	= "rx_bad_buffer",
};

static const char partlink_tx_stat_names[][ETH_GSTRING_LEN] = {
	[PARTLINK_TXS_PACKETS]		= "drv_tx_packets",
	[PARTLINK_TXS_BYTES]		= "drv_tx_bytes",
	[PARTLINK_TXS_DROPPED]		= "drv_tx_dropped",
	[PARTLINK_TXS_ERRORS]		= "drv_tx_errors",
	[PARTLINK_TXS_KICKS]		= "drv_tx_kicks",
	[PARTLINK_TXS_KICKS_SAVED]	= "drv_tx_kicks_saved",
	[PARTLINK_TXS_QUEUE_STOPS]	= "drv_tx_queue_stops",
	[PARTLINK_TXS_TIMEOUTS]		= "drv_tx_timeouts",
	[PARTLINK_TXS_MAP_ERRORS]	= "drv_tx_map_errors",
	[PARTLINK_TXS_OVERSIZE]		= "drv_tx_oversize",
	[PARTLINK_TXS_BAD_OFFLOAD]	= "drv_tx_bad_offload",
	[PARTLINK_TXS_TSO]		= "drv_tx_tso",
	[PARTLINK_TXS_CSUM_PARTIAL]	= "drv_tx_csum_partial",
	[PARTLINK_TXS_ST_BAD_ADDR]	= "drv_tx_st_bad_addr",
	[PARTLINK_TXS_ST_BAD_LEN]	= "drv_tx_st_bad_len",
	[PARTLINK_TXS_ST_BAD_DESC]	= "drv_tx_st_bad_desc",
	[PARTLINK_TXS_ST_SPOOFED]	= "drv_tx_st_spoofed",
	[PARTLINK_TXS_ST_NO_ROUTE]	= "drv_tx_st_no_route",
	[PARTLINK_TXS_ST_NO_BUFFER]	= "drv_tx_st_no_buffer",
	[PARTLINK_TXS_ST_NO_OFFLOAD]	= "drv_tx_st_no_offload",
	[PARTLINK_TXS_ST_LINK_DOWN]	= "drv_tx_st_link_down",
	[PARTLINK_TXS_ST_UNKNOWN]	= "drv_tx_st_unknown",
};

static const char partlink_rx_stat_names[][ETH_GSTRING_LEN] = {
	[PARTLINK_RXS_PACKETS]		= "drv_rx_packets",
	[PARTLINK_RXS_BYTES]		= "drv_rx_bytes",
	[PARTLINK_RXS_DROPPED]		= "drv_rx_dropped",
	[PARTLINK_RXS_ERRORS]		= "drv_rx_errors",
	[PARTLINK_RXS_POLLS]		= "drv_rx_polls",
	[PARTLINK_RXS_IRQS]		= "drv_interrupts",
	[PARTLINK_RXS_COPYBREAK]	= "drv_rx_copybreak",
	[PARTLINK_RXS_ALLOC_FAILED]	= "drv_rx_alloc_failed",
	[PARTLINK_RXS_SKB_FAILED]	= "drv_rx_skb_failed",
	[PARTLINK_RXS_BAD_LENGTH]	= "drv_rx_bad_length",
	[PARTLINK_RXS_BAD_CHAIN]	= "drv_rx_bad_chain",
	[PARTLINK_RXS_BAD_STATUS]	= "drv_rx_bad_status",
	[PARTLINK_RXS_BAD_OFFLOAD]	= "drv_rx_bad_offload",
	[PARTLINK_RXS_GSO]		= "drv_rx_gso",
	[PARTLINK_RXS_CSUM_PARTIAL]	= "drv_rx_csum_partial",
	[PARTLINK_RXS_CSUM_VALID]	= "drv_rx_csum_valid",
};

static const char partlink_link_stat_names[][ETH_GSTRING_LEN] = {
	"link_up",
	"link_peers",
};

static const char partlink_seg_stat_names[][ETH_GSTRING_LEN] = {
	[PARTLINK_SEGS_RINGS]		= "seg_rings_received",
	[PARTLINK_SEGS_BAD_ENTRIES]	= "seg_bad_entries",
};

#define PARTLINK_NR_STATS	(PARTLINK_NR_COUNTERS + PARTLINK_TXS_NR + \
				 PARTLINK_RXS_NR + \
				 ARRAY_SIZE(partlink_link_stat_names) + \
				 PARTLINK_SEGS_NR)

/* Registers that get_regs reads: those that read without side effects. */
static const u16 partlink_dump_regs[] = {
	PARTLINK_REG_MAGIC,
	PARTLINK_REG_VERSION,
	PARTLINK_REG_DEV_FEATURES,
	PARTLINK_REG_DRV_FEATURES,
	PARTLINK_REG_STATUS,
	PARTLINK_REG_MAC_LO,
	PARTLINK_REG_MAC_HI,
	PARTLINK_REG_PORT_ID,
	PARTLINK_REG_SCRATCH,
	PARTLINK_REG_BAD_ACCESS,
	PARTLINK_REG_TX_RING_LO,
	PARTLINK_REG_TX_RING_HI,
	PARTLINK_REG_TX_RING_SIZE,
	PARTLINK_REG_RX_RING_LO,
	PARTLINK_REG_RX_RING_HI,
	PARTLINK_REG_RX_RING_SIZE,
	PARTLINK_REG_IRQ_CTRL,
	PARTLINK_REG_LINK,
	PARTLINK_REG_MAX_PACKET,
	PARTLINK_REG_NOTIFY_LO,
	PARTLINK_REG_NOTIFY_HI,
};

/* get_regs dumps BAR 0 up to the counters. */
#define PARTLINK_REGS_LEN	PARTLINK_REG_COUNTERS

static void partlink_get_drvinfo(struct net_device *netdev,
				 struct ethtool_drvinfo *info)
{
	struct partlink_dev *pl = netdev_priv(netdev);

	strscpy(info->driver, PARTLINK_DRV_NAME, sizeof(info->driver));
	snprintf(info->fw_version, sizeof(info->fw_version), "abi %u",
		 PARTLINK_ABI_VERSION);
	strscpy(info->bus_info, pci_name(pl->pdev), sizeof(info->bus_info));
}

static int partlink_get_sset_count(struct net_device *netdev, int sset)
{
	switch (sset) {
	case ETH_SS_STATS:
		return PARTLINK_NR_STATS;
	default:
		return -EOPNOTSUPP;
	}
}

static void partlink_get_strings(struct net_device *netdev, u32 sset,
				 u8 *data)
{
	BUILD_BUG_ON(ARRAY_SIZE(partlink_dev_stat_names) !=
		     PARTLINK_NR_COUNTERS);
	BUILD_BUG_ON(ARRAY_SIZE(partlink_tx_stat_names) != PARTLINK_TXS_NR);
	BUILD_BUG_ON(ARRAY_SIZE(partlink_rx_stat_names) != PARTLINK_RXS_NR);
	BUILD_BUG_ON(ARRAY_SIZE(partlink_seg_stat_names) != PARTLINK_SEGS_NR);

	if (sset != ETH_SS_STATS)
		return;
	memcpy(data, partlink_dev_stat_names, sizeof(partlink_dev_stat_names));
	data += sizeof(partlink_dev_stat_names);
	memcpy(data, partlink_tx_stat_names, sizeof(partlink_tx_stat_names));
	data += sizeof(partlink_tx_stat_names);
	memcpy(data, partlink_rx_stat_names, sizeof(partlink_rx_stat_names));
	data += sizeof(partlink_rx_stat_names);
	memcpy(data, partlink_link_stat_names,
	       sizeof(partlink_link_stat_names));
	data += sizeof(partlink_link_stat_names);
	memcpy(data, partlink_seg_stat_names, sizeof(partlink_seg_stat_names));
}

/* Read the device's 64-bit counters: low word first, it latches the high. */
static void partlink_read_counters(struct partlink_dev *pl, u64 *data)
{
	unsigned int i;

	for (i = 0; i < PARTLINK_NR_COUNTERS; i++)
		data[i] = partlink_read_counter(pl, i);
}

static void partlink_get_ethtool_stats(struct net_device *netdev,
				       struct ethtool_stats *stats, u64 *data)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	u32 link = READ_ONCE(pl->link);

	partlink_read_counters(pl, data);
	data += PARTLINK_NR_COUNTERS;
	partlink_stats_snapshot(&pl->tx.syncp, pl->tx.stats, data,
				PARTLINK_TXS_NR);
	data += PARTLINK_TXS_NR;
	partlink_stats_snapshot(&pl->rx.syncp, pl->rx.stats, data,
				PARTLINK_RXS_NR);
	data += PARTLINK_RXS_NR;
	*data++ = !!(link & PARTLINK_LINK_UP);
	*data++ = link >> PARTLINK_LINK_PEERS_SHIFT;
	partlink_seg_get_stats(pl, data);
}

static void partlink_get_ringparam(struct net_device *netdev,
				   struct ethtool_ringparam *ring,
				   struct kernel_ethtool_ringparam *kring,
				   struct netlink_ext_ack *extack)
{
	struct partlink_dev *pl = netdev_priv(netdev);

	ring->rx_max_pending = PARTLINK_RING_MAX;
	ring->tx_max_pending = PARTLINK_RING_MAX;
	ring->rx_pending = pl->rx_ring_size;
	ring->tx_pending = pl->tx_ring_size;
	kring->rx_buf_len = PARTLINK_RX_BUF_LEN;
}

static int partlink_set_ringparam(struct net_device *netdev,
				  struct ethtool_ringparam *ring,
				  struct kernel_ethtool_ringparam *kring,
				  struct netlink_ext_ack *extack)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	u32 tx = ring->tx_pending, rx = ring->rx_pending;

	if (!is_power_of_2(tx) || tx < PARTLINK_TX_RING_MIN ||
	    tx > PARTLINK_RING_MAX) {
		NL_SET_ERR_MSG_MOD(extack,
				   "TX ring: a power of two from 64 to 4096");
		return -EINVAL;
	}
	if (!is_power_of_2(rx) || rx < PARTLINK_RX_RING_MIN ||
	    rx > PARTLINK_RING_MAX) {
		NL_SET_ERR_MSG_MOD(extack,
				   "RX ring: a power of two from 64 to 4096");
		return -EINVAL;
	}
	if (tx == pl->tx_ring_size && rx == pl->rx_ring_size)
		return 0;
	return partlink_set_ring_sizes(pl, tx, rx);
}

static int partlink_get_regs_len(struct net_device *netdev)
{
	return PARTLINK_REGS_LEN;
}

static void partlink_get_regs(struct net_device *netdev,
			      struct ethtool_regs *regs, void *p)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	u32 *buf = p;
	unsigned int i;

	BUILD_BUG_ON(PARTLINK_REG_MAX_PACKET >= PARTLINK_REGS_LEN);

	regs->version = PARTLINK_ABI_VERSION;
	memset(buf, 0, PARTLINK_REGS_LEN);
	for (i = 0; i < ARRAY_SIZE(partlink_dump_regs); i++)
		buf[partlink_dump_regs[i] / 4] =
			partlink_rd(pl, partlink_dump_regs[i]);
}

static const struct ethtool_ops partlink_ethtool_ops = {
	.get_drvinfo		= partlink_get_drvinfo,
	.get_regs_len		= partlink_get_regs_len,
	.get_regs		= partlink_get_regs,
	.get_link		= ethtool_op_get_link,
	.get_ringparam		= partlink_get_ringparam,
	.set_ringparam		= partlink_set_ringparam,
	.get_strings		= partlink_get_strings,
	.get_sset_count		= partlink_get_sset_count,
	.get_ethtool_stats	= partlink_get_ethtool_stats,
};

void partlink_set_ethtool_ops(struct net_device *netdev)
{
	netdev->ethtool_ops = &partlink_ethtool_ops;
}
