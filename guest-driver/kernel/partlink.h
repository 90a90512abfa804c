/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * partlink: driver for the partlink-pci inter-partition adapter
 *
 * Private definitions shared by the parts of the driver: the PCI part
 * (partlink_main.c), the network interface and its TX ring
 * (partlink_netdev.c), the RX ring and NAPI (partlink_rx.c), ethtool
 * (partlink_ethtool.c), the hypervisor mailbox (partlink_hv.c) and the
 * shared segments (partlink_seg.c).
 */
#ifndef PARTLINK_H
#define PARTLINK_H

#include <linux/etherdevice.h>
#include <linux/io.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/skbuff.h>
#include <linux/spinlock.h>
#include <linux/u64_stats_sync.h>
#include <linux/workqueue.h>

#include <partlink/partlink_abi.h>

#define PARTLINK_DRV_NAME	"partlink"

struct page_pool;

/*
 * Ring sizes this driver programs by default; ethtool -G changes them.
 * RX entries are one page each and a 64 KiB TSO frame takes 18 of them:
 * 2048 entries (8 MiB) hold about 110 such frames, so that senders do not
 * find the ring empty while this guest's vCPU is busy elsewhere (256 made
 * iperf3 retransmit hundreds of segments under TCG).
 */
#define PARTLINK_TX_RING_SIZE	256
#define PARTLINK_RX_RING_SIZE	2048
/* Smallest rings ethtool -G accepts: room for a few of the largest packets. */
#define PARTLINK_TX_RING_MIN	64
#define PARTLINK_RX_RING_MIN	64

/* Largest MTU offered, whatever the device could carry. */
#define PARTLINK_MTU_MAX	64000

/* Ring entries one TX packet may need: the linear part and every frag. */
#define PARTLINK_TX_MAX_ENTRIES	(MAX_SKB_FRAGS + 1)
/* TCP may keep 2^-this seconds of a flow below it (8 ms; default 1 ms). */
#define PARTLINK_TX_PACING_SHIFT	7
/* Stop the TX queue when fewer entries than this are free. */
#define PARTLINK_TX_STOP_THRESH	(MAX_SKB_FRAGS + 2)

/*
 * An RX buffer is one page: the data starts at NET_SKB_PAD and ends where
 * napi_build_skb() puts the skb_shared_info.
 */
#define PARTLINK_RX_BUF_LEN	(SKB_WITH_OVERHEAD(PAGE_SIZE) - NET_SKB_PAD)
/* Entries one received packet may occupy: the head page and its frags. */
#define PARTLINK_RX_MAX_ENTRIES	(MAX_SKB_FRAGS + 1)
/*
 * Frames up to this size are copied into a small skb and their page is
 * posted again at once: cheaper than a page allocation per small frame.
 */
#define PARTLINK_RX_COPYBREAK	256
/* Refill the RX ring in the poll loop once this many entries are empty. */
#define PARTLINK_RX_REFILL_BATCH	32

/* Driver-side TX counters, reported by ethtool -S as drv_<name>. */
enum partlink_tx_stat {
	PARTLINK_TXS_PACKETS,
	PARTLINK_TXS_BYTES,
	PARTLINK_TXS_DROPPED,		/* the device could not deliver */
	PARTLINK_TXS_ERRORS,		/* the device refused the packet */
	PARTLINK_TXS_KICKS,		/* doorbells rung */
	PARTLINK_TXS_KICKS_SAVED,	/* batches the device took unrung */
	PARTLINK_TXS_QUEUE_STOPS,
	PARTLINK_TXS_TIMEOUTS,
	PARTLINK_TXS_MAP_ERRORS,
	PARTLINK_TXS_OVERSIZE,
	PARTLINK_TXS_BAD_OFFLOAD,
	PARTLINK_TXS_TSO,
	PARTLINK_TXS_CSUM_PARTIAL,
	/* one per PARTLINK_ST_* error status, in that order */
	PARTLINK_TXS_ST_BAD_ADDR,
	PARTLINK_TXS_ST_BAD_LEN,
	PARTLINK_TXS_ST_BAD_DESC,
	PARTLINK_TXS_ST_SPOOFED,
	PARTLINK_TXS_ST_NO_ROUTE,
	PARTLINK_TXS_ST_NO_BUFFER,
	PARTLINK_TXS_ST_NO_OFFLOAD,
	PARTLINK_TXS_ST_LINK_DOWN,
	PARTLINK_TXS_ST_UNKNOWN,
	PARTLINK_TXS_NR
};

/* Driver-side RX counters, reported by ethtool -S as drv_<name>. */
enum partlink_rx_stat {
	PARTLINK_RXS_PACKETS,
	PARTLINK_RXS_BYTES,
	PARTLINK_RXS_DROPPED,		/* no memory, bad offload metadata */
	PARTLINK_RXS_ERRORS,		/* bad entries from the device */
	PARTLINK_RXS_POLLS,
	PARTLINK_RXS_IRQS,		/* DATA interrupts taken */
	PARTLINK_RXS_COPYBREAK,		/* small frames copied, page kept */
	PARTLINK_RXS_ALLOC_FAILED,
	PARTLINK_RXS_SKB_FAILED,
	PARTLINK_RXS_BAD_LENGTH,
	PARTLINK_RXS_BAD_CHAIN,
	PARTLINK_RXS_BAD_STATUS,
	PARTLINK_RXS_BAD_OFFLOAD,
	PARTLINK_RXS_GSO,
	PARTLINK_RXS_CSUM_PARTIAL,
	PARTLINK_RXS_CSUM_VALID,
	PARTLINK_RXS_NR
};

/* Driver-side segment counters, reported by ethtool -S as seg_<name>. */
enum partlink_seg_stat {
	PARTLINK_SEGS_RINGS,		/* doorbells delivered to a segment */
	PARTLINK_SEGS_BAD_ENTRIES,	/* table entries refused, per scan */
	PARTLINK_SEGS_NR
};

/* A mapped piece of a TX packet. */
struct partlink_tx_buf {
	struct sk_buff *skb;	/* set on the packet's last entry only */
	dma_addr_t dma;
	u32 len;
	bool is_page;		/* mapped with skb_frag_dma_map() */
};

/* A posted RX page; page is NULL while the slot is empty. */
struct partlink_rx_buf {
	struct page *page;	/* from the ring's page_pool */
	dma_addr_t dma;		/* of the data, at NET_SKB_PAD */
};

/*
 * The TX ring.  next and clean run freely; next - clean entries are in
 * use.  Its users exclude each other through the TX queue: start_xmit
 * (queue lock), tx_timeout (queues frozen), open and stop (queue off).
 */
struct partlink_tx_ring {
	struct partlink_desc *desc;
	dma_addr_t desc_dma;
	struct partlink_tx_buf *bufs;
	u32 size;
	u32 next;		/* next entry to fill */
	u32 clean;		/* oldest entry not yet reclaimed */
	u32 unkicked;		/* entries filled since the device was told */
	u16 pkt_status;		/* first error of the packet being reclaimed */
	struct u64_stats_sync syncp;
	u64_stats_t stats[PARTLINK_TXS_NR];
};

/*
 * The RX ring.  next and fill run freely: [next, fill) are posted
 * entries, owned by the device or completed and not yet processed.
 * Only the NAPI poll touches it while the interface is up.
 */
struct partlink_rx_ring {
	struct partlink_desc *desc;
	dma_addr_t desc_dma;
	struct partlink_rx_buf *bufs;
	u32 size;
	u32 next;		/* next entry to process */
	u32 fill;		/* next entry to post */
	bool discard;		/* dropping the rest of a too long chain */
	struct page_pool *pool;	/* the pages, DMA-mapped once */
	struct u64_stats_sync syncp;
	u64_stats_t stats[PARTLINK_RXS_NR];
};

struct partlink_hv;
struct partlink_segs;

struct partlink_dev {
	struct net_device *netdev;
	struct pci_dev *pdev;
	void __iomem *regs;

	u32 features;		/* PARTLINK_F_* accepted */
	u32 tx_ring_size;	/* entries, for the next open */
	u32 rx_ring_size;
	bool running;		/* open succeeded: rings, IRQs and NAPI live */
	u32 max_packet;		/* largest frame the device carries */
	u32 port_id;

	struct partlink_tx_ring tx;
	struct partlink_rx_ring rx;
	/* shared with the device and peers: see struct partlink_notify */
	struct partlink_notify *notify;
	dma_addr_t notify_dma;
	struct napi_struct napi;
	struct delayed_work refill_work;
	spinlock_t refill_lock;	/* orders refill_enabled and scheduling */
	bool refill_enabled;	/* the poll may schedule refill_work */

	spinlock_t link_lock;	/* orders LINK reads and carrier changes */
	u32 link;		/* last LINK register value */

	/*
	 * IRQ_CTRL as the driver wants it.  Netdev and segments own different
	 * bits, and a device reset clears the register: see partlink_reset().
	 */
	spinlock_t irq_lock;	/* guards irq_ctrl and IRQ_CTRL writes */
	u32 irq_ctrl;

	spinlock_t ctr_lock;	/* the device latches one counter at a time */
	/* a reset and the mailbox's MBOX_SEND never interleave */
	spinlock_t reset_lock;

	char irq_name[PARTLINK_NR_VECTORS][IFNAMSIZ + 8];

	/* /dev/partlink-hv, if this adapter owns it; set at probe */
	struct partlink_hv *hv;
	/* shared segments, if the device has BAR 2; set at probe */
	struct partlink_segs *segs;
};

static inline u32 partlink_rd(struct partlink_dev *pl, unsigned int reg)
{
	return ioread32(pl->regs + reg);
}

static inline void partlink_wr(struct partlink_dev *pl, unsigned int reg,
			       u32 val)
{
	iowrite32(val, pl->regs + reg);
}

/* Enable the vectors in @set, disable those in @clear; any context. */
static inline void partlink_irq_ctrl(struct partlink_dev *pl, u32 set,
				     u32 clear)
{
	unsigned long flags;

	spin_lock_irqsave(&pl->irq_lock, flags);
	pl->irq_ctrl = (pl->irq_ctrl & ~clear) | set;
	partlink_wr(pl, PARTLINK_REG_IRQ_CTRL, pl->irq_ctrl);
	spin_unlock_irqrestore(&pl->irq_lock, flags);
}

static inline void partlink_stat_add(struct u64_stats_sync *syncp,
				     u64_stats_t *stat, u64 val)
{
	u64_stats_update_begin(syncp);
	u64_stats_add(stat, val);
	u64_stats_update_end(syncp);
}

static inline void partlink_tx_stat(struct partlink_tx_ring *tx,
				    enum partlink_tx_stat idx, u64 val)
{
	partlink_stat_add(&tx->syncp, &tx->stats[idx], val);
}

static inline void partlink_rx_stat(struct partlink_rx_ring *rx,
				    enum partlink_rx_stat idx, u64 val)
{
	partlink_stat_add(&rx->syncp, &rx->stats[idx], val);
}

/* partlink_main.c */
void partlink_reset(struct partlink_dev *pl);
u64 partlink_read_counter(struct partlink_dev *pl, unsigned int idx);
int partlink_start_device(struct partlink_dev *pl);
void partlink_update_link(struct partlink_dev *pl);
irqreturn_t partlink_link_irq(int irq, void *data);

/* partlink_netdev.c */
void partlink_netdev_setup(struct partlink_dev *pl);
void partlink_tx_clean(struct partlink_dev *pl);
bool partlink_tx_done_pending(struct partlink_dev *pl);
int partlink_set_ring_sizes(struct partlink_dev *pl, u32 tx, u32 rx);
void partlink_stats_snapshot(struct u64_stats_sync *syncp,
			     const u64_stats_t *stats, u64 *out,
			     unsigned int n);

/* partlink_rx.c */
int partlink_rx_alloc(struct partlink_dev *pl, struct partlink_rx_ring *rx,
		      u32 size);
void partlink_rx_free(struct partlink_dev *pl, struct partlink_rx_ring *rx);
void partlink_rx_take(struct partlink_rx_ring *dst,
		      struct partlink_rx_ring *src);
bool partlink_rx_fill(struct partlink_dev *pl, struct partlink_rx_ring *rx,
		      gfp_t gfp);
bool partlink_rx_refill(struct partlink_dev *pl, gfp_t gfp);
int partlink_poll(struct napi_struct *napi, int budget);
irqreturn_t partlink_rx_irq(int irq, void *data);
void partlink_refill_work(struct work_struct *work);
void partlink_refill_enable(struct partlink_dev *pl, bool enable);

/* partlink_ethtool.c */
void partlink_set_ethtool_ops(struct net_device *netdev);

/* partlink_hv.c */
int partlink_hv_probe(struct partlink_dev *pl);
void partlink_hv_remove(struct partlink_dev *pl);
void partlink_hv_reset(struct partlink_hv *hv);

/* partlink_seg.c */
int partlink_seg_init(void);
void partlink_seg_exit(void);
int partlink_seg_probe(struct partlink_dev *pl);
void partlink_seg_remove(struct partlink_dev *pl);
void partlink_seg_kick(struct partlink_dev *pl);
void partlink_seg_get_stats(struct partlink_dev *pl, u64 *data);

#endif /* PARTLINK_H */
