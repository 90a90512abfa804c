// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: the network interface and its TX ring
 *
 * A packet to send is a run of TX ring entries: the linear part of the
 * skb and then every frag, MORE set on all entries but the last, offload
 * metadata (the values of struct virtio_net_hdr) in the first.  The
 * device's TX thread copies each owned packet into its destination's RX
 * buffers and hands the entries back with a status.
 *
 * At the end of a batch (xmit_more) the driver rings TX_KICK only if the
 * notify area says the thread sleeps; while it works no doorbell is
 * needed.  Handed-back entries are reclaimed by the next start_xmit and
 * by the NAPI poll; the driver asks for a TX interrupt (tx_event) at the
 * end of a batch, which the device raises at most every tx-irq-gap-us.
 */

#include <linux/interrupt.h>
#include <linux/if_vlan.h>
#include <linux/virtio_net.h>
#include <net/sock.h>

#include "partlink.h"

static u32 partlink_tx_avail(const struct partlink_tx_ring *tx)
{
	return tx->size - (tx->next - tx->clean);
}

static void partlink_tx_unmap(struct partlink_dev *pl,
			      struct partlink_tx_buf *buf)
{
	struct device *dev = &pl->pdev->dev;

	if (buf->is_page)
		dma_unmap_page(dev, buf->dma, buf->len, DMA_TO_DEVICE);
	else
		dma_unmap_single(dev, buf->dma, buf->len, DMA_TO_DEVICE);
}

/* Count a finished packet by the first error status of its entries. */
static void partlink_tx_count(struct partlink_tx_ring *tx,
			      const struct sk_buff *skb, u16 status)
{
	enum partlink_tx_stat stat;

	switch (status) {
	case PARTLINK_ST_OK:
		u64_stats_update_begin(&tx->syncp);
		u64_stats_inc(&tx->stats[PARTLINK_TXS_PACKETS]);
		u64_stats_add(&tx->stats[PARTLINK_TXS_BYTES], skb->len);
		u64_stats_update_end(&tx->syncp);
		return;
	case PARTLINK_ST_BAD_ADDR:
	case PARTLINK_ST_BAD_LEN:
	case PARTLINK_ST_BAD_DESC:
	case PARTLINK_ST_SPOOFED:
		stat = PARTLINK_TXS_ERRORS;
		break;
	default:
		/* No route, no buffer, no offload, link down: a drop. */
		stat = PARTLINK_TXS_DROPPED;
		break;
	}

	BUILD_BUG_ON(PARTLINK_TXS_ST_LINK_DOWN - PARTLINK_TXS_ST_BAD_ADDR !=
		     PARTLINK_ST_LINK_DOWN - PARTLINK_ST_BAD_ADDR);
	u64_stats_update_begin(&tx->syncp);
	u64_stats_inc(&tx->stats[stat]);
	if (status >= PARTLINK_ST_BAD_ADDR && status <= PARTLINK_ST_LINK_DOWN)
		u64_stats_inc(&tx->stats[PARTLINK_TXS_ST_BAD_ADDR + status -
					 PARTLINK_ST_BAD_ADDR]);
	else
		u64_stats_inc(&tx->stats[PARTLINK_TXS_ST_UNKNOWN]);
	u64_stats_update_end(&tx->syncp);
}

/*
 * Reclaim the entries the device handed back, oldest first, up to the
 * first one it still owns.  Called with the TX queue lock held.
 */
static void partlink_tx_reclaim(struct partlink_dev *pl)
{
	struct netdev_queue *txq = netdev_get_tx_queue(pl->netdev, 0);
	struct partlink_tx_ring *tx = &pl->tx;
	unsigned int pkts = 0, bytes = 0;

	while (tx->clean != tx->next) {
		u32 idx = tx->clean & (tx->size - 1);
		struct partlink_desc *desc = &tx->desc[idx];
		struct partlink_tx_buf *buf = &tx->bufs[idx];
		struct sk_buff *skb;
		u16 status;

		if (le16_to_cpu(READ_ONCE(desc->flags)) & PARTLINK_DESC_OWN)
			break;
		/* Read the status only after seeing OWN clear. */
		dma_rmb();
		status = le16_to_cpu(READ_ONCE(desc->status));
		if (status != PARTLINK_ST_OK && tx->pkt_status == PARTLINK_ST_OK)
			tx->pkt_status = status;

		partlink_tx_unmap(pl, buf);
		skb = buf->skb;
		buf->skb = NULL;
		tx->clean++;
		if (!skb)
			continue;

		/* The packet's last entry: it is done. */
		partlink_tx_count(tx, skb, tx->pkt_status);
		pkts++;
		bytes += skb->len;
		if (tx->pkt_status == PARTLINK_ST_OK)
			dev_consume_skb_any(skb);
		else
			dev_kfree_skb_any(skb);
		tx->pkt_status = PARTLINK_ST_OK;
	}

	netdev_tx_completed_queue(txq, pkts, bytes);

	if (netif_tx_queue_stopped(txq) &&
	    partlink_tx_avail(tx) >= PARTLINK_TX_STOP_THRESH)
		netif_tx_wake_queue(txq);
}

/*
 * The end of a batch: ask for an interrupt once the device has handed it
 * all back, and ring the doorbell if the device's TX thread sleeps.
 */
static void partlink_tx_notify(struct partlink_dev *pl, bool force)
{
	struct partlink_tx_ring *tx = &pl->tx;

	tx->unkicked = 0;
	/* An interrupt once the device has handed all of it back. */
	WRITE_ONCE(pl->notify->tx_event, cpu_to_le32(tx->next - 1));
	/* The entries are owned before we read whether the device sleeps. */
	virt_mb();
	if (force || READ_ONCE(pl->notify->tx_kick)) {
		partlink_wr(pl, PARTLINK_REG_TX_KICK, 1);
		partlink_tx_stat(tx, PARTLINK_TXS_KICKS, 1);
	} else {
		partlink_tx_stat(tx, PARTLINK_TXS_KICKS_SAVED, 1);
	}
}

/* True if the device handed back the oldest entry not yet reclaimed. */
bool partlink_tx_done_pending(struct partlink_dev *pl)
{
	struct partlink_tx_ring *tx = &pl->tx;
	u32 clean = READ_ONCE(tx->clean);

	if (clean == READ_ONCE(tx->next))
		return false;
	return !(le16_to_cpu(READ_ONCE(tx->desc[clean & (tx->size - 1)].flags)) &
		 PARTLINK_DESC_OWN);
}

/* From the NAPI poll: reclaim unless start_xmit is at it right now. */
void partlink_tx_clean(struct partlink_dev *pl)
{
	struct netdev_queue *txq = netdev_get_tx_queue(pl->netdev, 0);

	if (!__netif_tx_trylock(txq))
		return;
	partlink_tx_reclaim(pl);
	__netif_tx_unlock(txq);
}

/* Offload metadata of a packet, for its first ring entry. */
struct partlink_tx_meta {
	u16 flags;
	u16 csum_start;
	u16 csum_offset;
	u16 gso_size;
	u8 gso_type;
	u8 hdr_len;
};

/* Describe the skb's offloads with the values of struct virtio_net_hdr. */
static int partlink_tx_offload(struct partlink_dev *pl, struct sk_buff *skb,
			       struct partlink_tx_meta *meta)
{
	bool csum = pl->features & PARTLINK_F_CSUM;
	struct virtio_net_hdr hdr;
	int hdr_len;

	if (virtio_net_hdr_from_skb(skb, &hdr, true, csum, 0))
		return -EINVAL;

	memset(meta, 0, sizeof(*meta));
	if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		meta->flags |= PARTLINK_DESC_NEEDS_CSUM;
	if (hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID)
		meta->flags |= PARTLINK_DESC_DATA_VALID;
	if (meta->flags && !csum)
		return -EINVAL;
	meta->csum_start = __virtio16_to_cpu(true, hdr.csum_start);
	meta->csum_offset = __virtio16_to_cpu(true, hdr.csum_offset);

	if (hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return 0;
	if (!(pl->features & PARTLINK_F_GSO))
		return -EINVAL;
	meta->gso_type = hdr.gso_type;
	meta->gso_size = __virtio16_to_cpu(true, hdr.gso_size);
	/*
	 * virtio_net_hdr_from_skb() gives skb_headlen(), a hint that need
	 * not fit in 8 bits; give the real header length, or 0 if too long.
	 */
	hdr_len = skb_tcp_all_headers(skb);
	if (hdr_len <= U8_MAX)
		meta->hdr_len = hdr_len;
	return 0;
}

/* Fill a ring entry, all but its flags. */
static void partlink_tx_fill(struct partlink_tx_ring *tx, u32 idx,
			     dma_addr_t dma, u32 len, bool is_page)
{
	struct partlink_desc *desc = &tx->desc[idx];
	struct partlink_tx_buf *buf = &tx->bufs[idx];

	buf->skb = NULL;
	buf->dma = dma;
	buf->len = len;
	buf->is_page = is_page;

	desc->addr = cpu_to_le64(dma);
	desc->len = cpu_to_le32(len);
	desc->status = 0;
	desc->csum_start = 0;
	desc->csum_offset = 0;
	desc->gso_size = 0;
	desc->gso_type = 0;
	desc->hdr_len = 0;
	desc->reserved = 0;
	desc->cookie = cpu_to_le32(idx);
}

/*
 * Map the skb into ring entries and hand them to the device, the first
 * entry last.  The caller has checked that PARTLINK_TX_MAX_ENTRIES are
 * free.  Returns 0 or a negative errno; the skb is not consumed on error.
 */
static int partlink_tx_map(struct partlink_dev *pl, struct sk_buff *skb)
{
	struct partlink_tx_ring *tx = &pl->tx;
	struct device *dev = &pl->pdev->dev;
	u32 len = skb_headlen(skb);
	u32 mask = tx->size - 1;
	u32 first = tx->next;
	struct partlink_tx_meta meta;
	struct partlink_desc *desc;
	unsigned int nr = 0, i;
	dma_addr_t dma;
	u16 flags;

	BUILD_BUG_ON(PARTLINK_TX_MAX_ENTRIES > PARTLINK_MAX_SEGS);

	if (partlink_tx_offload(pl, skb, &meta)) {
		partlink_tx_stat(tx, PARTLINK_TXS_BAD_OFFLOAD, 1);
		return -EINVAL;
	}

	/* The linear part, then every frag; empty pieces are skipped. */
	if (len) {
		dma = dma_map_single(dev, skb->data, len, DMA_TO_DEVICE);
		if (dma_mapping_error(dev, dma))
			goto err_map;
		partlink_tx_fill(tx, first & mask, dma, len, false);
		nr++;
	}
	for (i = 0; i < skb_shinfo(skb)->nr_frags; i++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];

		len = skb_frag_size(frag);
		if (!len)
			continue;
		dma = skb_frag_dma_map(dev, frag, 0, len, DMA_TO_DEVICE);
		if (dma_mapping_error(dev, dma))
			goto err_map;
		partlink_tx_fill(tx, (first + nr) & mask, dma, len, true);
		nr++;
	}
	if (!nr)
		return -EINVAL;

	desc = &tx->desc[first & mask];
	desc->csum_start = cpu_to_le16(meta.csum_start);
	desc->csum_offset = cpu_to_le16(meta.csum_offset);
	desc->gso_size = cpu_to_le16(meta.gso_size);
	desc->gso_type = meta.gso_type;
	desc->hdr_len = meta.hdr_len;
	tx->bufs[(first + nr - 1) & mask].skb = skb;

	/* Entries are complete before the device may see them as owned. */
	dma_wmb();
	for (i = 1; i < nr; i++) {
		flags = PARTLINK_DESC_OWN;
		if (i + 1 < nr)
			flags |= PARTLINK_DESC_MORE;
		WRITE_ONCE(tx->desc[(first + i) & mask].flags,
			   cpu_to_le16(flags));
	}
	/* The packet's other entries are owned before its first one. */
	dma_wmb();
	flags = meta.flags | PARTLINK_DESC_OWN;
	if (nr > 1)
		flags |= PARTLINK_DESC_MORE;
	WRITE_ONCE(desc->flags, cpu_to_le16(flags));

	tx->next += nr;
	tx->unkicked += nr;
	if (meta.flags & PARTLINK_DESC_NEEDS_CSUM)
		partlink_tx_stat(tx, PARTLINK_TXS_CSUM_PARTIAL, 1);
	if (meta.gso_type != PARTLINK_GSO_NONE)
		partlink_tx_stat(tx, PARTLINK_TXS_TSO, 1);
	return 0;

err_map:
	while (nr--)
		partlink_tx_unmap(pl, &tx->bufs[(first + nr) & mask]);
	partlink_tx_stat(tx, PARTLINK_TXS_MAP_ERRORS, 1);
	return -ENOMEM;
}

static netdev_tx_t partlink_start_xmit(struct sk_buff *skb,
				       struct net_device *netdev)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	struct netdev_queue *txq = netdev_get_tx_queue(netdev, 0);
	struct partlink_tx_ring *tx = &pl->tx;
	bool more = netdev_xmit_more();
	unsigned int len = skb->len;
	bool kick;

	/* Free what the device handed back since the last packet. */
	partlink_tx_reclaim(pl);

	if (unlikely(len > pl->max_packet)) {
		partlink_tx_stat(tx, PARTLINK_TXS_OVERSIZE, 1);
		goto drop;
	}
	/* The queue stops before the ring can be this full. */
	if (unlikely(partlink_tx_avail(tx) < PARTLINK_TX_MAX_ENTRIES))
		goto drop;
	if (partlink_tx_map(pl, skb))
		goto drop;
	/*
	 * TCP's small queues keep about 2^-sk_pacing_shift s of a flow's data
	 * (1 ms) below it, until TX completions free it.  Our completions
	 * come back through an interrupt, which under emulation takes far
	 * longer than the copy: allow 8 ms, as mac80211 does for the same
	 * reason.  Sockets keep their send buffer accounting.
	 */
	sk_pacing_shift_update(skb->sk, PARTLINK_TX_PACING_SHIFT);

	kick = __netdev_tx_sent_queue(txq, len, more) ||
	       partlink_tx_avail(tx) < PARTLINK_TX_STOP_THRESH;
	if (unlikely(partlink_tx_avail(tx) < PARTLINK_TX_STOP_THRESH)) {
		netif_tx_stop_queue(txq);
		partlink_tx_stat(tx, PARTLINK_TXS_QUEUE_STOPS, 1);
	}
	if (kick)
		partlink_tx_notify(pl, false);
	/*
	 * The device may have handed everything back between our reclaim
	 * and the stop, and its interrupt may have found NAPI busy: look.
	 */
	if (unlikely(netif_xmit_stopped(txq)))
		partlink_tx_reclaim(pl);
	return NETDEV_TX_OK;

drop:
	dev_kfree_skb_any(skb);
	partlink_tx_stat(tx, PARTLINK_TXS_DROPPED, 1);
	/* Do not leave a batch that xmit_more promised to end untold. */
	if (!more && tx->unkicked)
		partlink_tx_notify(pl, false);
	return NETDEV_TX_OK;
}

/* The device kept entries for seconds: ring whatever the notify area says. */
static void partlink_tx_timeout(struct net_device *netdev, unsigned int q)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	struct partlink_tx_ring *tx = &pl->tx;

	netdev_warn(netdev, "TX stalled: %u entries still owned by the device\n",
		    tx->next - tx->clean);
	partlink_tx_stat(tx, PARTLINK_TXS_TIMEOUTS, 1);
	/* The watchdog froze the queues: no start_xmit runs meanwhile. */
	partlink_tx_notify(pl, true);
	partlink_tx_reclaim(pl);
}

static netdev_features_t partlink_features_check(struct sk_buff *skb,
						 struct net_device *netdev,
						 netdev_features_t features)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	unsigned int len = skb->len;

	features = vlan_features_check(skb, features);
	/* A tag not yet in the data goes in before the driver sees it. */
	if (skb_vlan_tag_present(skb))
		len += VLAN_HLEN;
	/* A GSO packet must fit in one frame: else segment it in software. */
	if (skb_is_gso(skb) && len > pl->max_packet)
		features &= ~NETIF_F_GSO_MASK;
	return features;
}

/* Allocate a TX ring of @size entries into @tx. */
static int partlink_tx_alloc(struct partlink_dev *pl,
			     struct partlink_tx_ring *tx, u32 size)
{
	tx->bufs = kcalloc(size, sizeof(*tx->bufs), GFP_KERNEL);
	if (!tx->bufs)
		return -ENOMEM;
	tx->desc = dma_alloc_coherent(&pl->pdev->dev, size * sizeof(*tx->desc),
				      &tx->desc_dma, GFP_KERNEL);
	if (!tx->desc) {
		kfree(tx->bufs);
		tx->bufs = NULL;
		return -ENOMEM;
	}
	tx->size = size;
	tx->next = 0;
	tx->clean = 0;
	tx->unkicked = 0;
	tx->pkt_status = PARTLINK_ST_OK;
	return 0;
}

/* Free a TX ring and what is still queued in it; the device must not use it. */
static void partlink_tx_free(struct partlink_dev *pl,
			     struct partlink_tx_ring *tx)
{
	if (!tx->desc)
		return;
	for (; tx->clean != tx->next; tx->clean++) {
		struct partlink_tx_buf *buf = &tx->bufs[tx->clean &
							(tx->size - 1)];

		partlink_tx_unmap(pl, buf);
		if (buf->skb) {
			dev_kfree_skb_any(buf->skb);
			buf->skb = NULL;
		}
	}
	dma_free_coherent(&pl->pdev->dev, tx->size * sizeof(*tx->desc),
			  tx->desc, tx->desc_dma);
	tx->desc = NULL;
	kfree(tx->bufs);
	tx->bufs = NULL;
}

/* Hand the ring memory of @src over to @dst; @dst keeps its counters. */
static void partlink_tx_take(struct partlink_tx_ring *dst,
			     struct partlink_tx_ring *src)
{
	dst->desc = src->desc;
	dst->desc_dma = src->desc_dma;
	dst->bufs = src->bufs;
	dst->size = src->size;
	dst->next = src->next;
	dst->clean = src->clean;
	dst->unkicked = src->unkicked;
	dst->pkt_status = src->pkt_status;
	src->desc = NULL;
	src->bufs = NULL;
}

static int partlink_request_irqs(struct partlink_dev *pl)
{
	struct pci_dev *pdev = pl->pdev;
	int err;

	snprintf(pl->irq_name[PARTLINK_VEC_DATA], sizeof(pl->irq_name[0]),
		 "%s-data", pl->netdev->name);
	snprintf(pl->irq_name[PARTLINK_VEC_LINK], sizeof(pl->irq_name[0]),
		 "%s-link", pl->netdev->name);

	err = request_irq(pci_irq_vector(pdev, PARTLINK_VEC_DATA),
			  partlink_rx_irq, 0, pl->irq_name[PARTLINK_VEC_DATA], pl);
	if (err)
		return err;
	err = request_irq(pci_irq_vector(pdev, PARTLINK_VEC_LINK),
			  partlink_link_irq, 0, pl->irq_name[PARTLINK_VEC_LINK],
			  pl);
	if (err)
		free_irq(pci_irq_vector(pdev, PARTLINK_VEC_DATA), pl);
	return err;
}

static void partlink_free_irqs(struct partlink_dev *pl)
{
	free_irq(pci_irq_vector(pl->pdev, PARTLINK_VEC_LINK), pl);
	free_irq(pci_irq_vector(pl->pdev, PARTLINK_VEC_DATA), pl);
}

static int partlink_notify_alloc(struct partlink_dev *pl)
{
	pl->notify = dma_alloc_coherent(&pl->pdev->dev, PARTLINK_NOTIFY_SIZE,
					&pl->notify_dma, GFP_KERNEL);
	return pl->notify ? 0 : -ENOMEM;
}

/* Free the notify area; the device must be reset. */
static void partlink_notify_free(struct partlink_dev *pl)
{
	if (!pl->notify)
		return;
	dma_free_coherent(&pl->pdev->dev, PARTLINK_NOTIFY_SIZE, pl->notify,
			  pl->notify_dma);
	pl->notify = NULL;
}

static int partlink_open(struct net_device *netdev)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	int err;

	BUILD_BUG_ON(sizeof(struct partlink_notify) != PARTLINK_NOTIFY_SIZE);
	err = partlink_notify_alloc(pl);
	if (err)
		return err;
	/* A ring resize may have allocated the rings already. */
	if (!pl->tx.desc) {
		err = partlink_tx_alloc(pl, &pl->tx, pl->tx_ring_size);
		if (err)
			goto err_notify;
	}
	if (!pl->rx.desc) {
		err = partlink_rx_alloc(pl, &pl->rx, pl->rx_ring_size);
		if (err)
			goto err_tx;
	}
	if (!partlink_rx_refill(pl, GFP_KERNEL)) {
		err = -ENOMEM;
		goto err_rx;
	}

	err = partlink_request_irqs(pl);
	if (err) {
		netdev_err(netdev, "cannot request interrupts: %d\n", err);
		goto err_rx;
	}

	err = partlink_start_device(pl);
	if (err)
		goto err_irqs;

	napi_enable(&pl->napi);
	partlink_refill_enable(pl, true);
	partlink_irq_ctrl(pl, PARTLINK_IRQ_DATA | PARTLINK_IRQ_LINK, 0);
	partlink_update_link(pl);
	netif_tx_start_all_queues(netdev);
	pl->running = true;

	/* Peers may have sent before the poll first armed the interrupt. */
	local_bh_disable();
	napi_schedule(&pl->napi);
	local_bh_enable();
	return 0;

err_irqs:
	partlink_free_irqs(pl);
err_rx:
	partlink_rx_free(pl, &pl->rx);
err_tx:
	partlink_tx_free(pl, &pl->tx);
err_notify:
	partlink_notify_free(pl);
	return err;
}

static int partlink_stop(struct net_device *netdev)
{
	struct partlink_dev *pl = netdev_priv(netdev);

	/* Nothing to undo after a failed reopen (partlink_set_ring_sizes). */
	if (!pl->running)
		return 0;
	pl->running = false;

	netif_tx_disable(netdev);
	/* From here on neither the device nor a peer touches our memory. */
	partlink_reset(pl);
	partlink_refill_enable(pl, false);
	cancel_delayed_work_sync(&pl->refill_work);
	napi_disable(&pl->napi);
	partlink_free_irqs(pl);
	netif_carrier_off(netdev);
	WRITE_ONCE(pl->link, 0);

	partlink_tx_free(pl, &pl->tx);
	netdev_reset_queue(netdev);
	partlink_rx_free(pl, &pl->rx);
	partlink_notify_free(pl);
	return 0;
}

/*
 * Change the ring sizes; a running interface is closed and opened again.
 * The new rings, buffers included, are allocated first: if memory is
 * short the old rings go on as they were.  If it cannot be reopened even
 * so, it tries the old sizes, and failing that stays up without carrier
 * until the next ifdown/ifup.  Called under RTNL.
 */
int partlink_set_ring_sizes(struct partlink_dev *pl, u32 tx, u32 rx)
{
	struct net_device *netdev = pl->netdev;
	u32 old_tx = pl->tx_ring_size, old_rx = pl->rx_ring_size;
	struct partlink_tx_ring new_tx = {};
	struct partlink_rx_ring new_rx = {};
	int err;

	if (!netif_running(netdev)) {
		pl->tx_ring_size = tx;
		pl->rx_ring_size = rx;
		return 0;
	}

	err = partlink_tx_alloc(pl, &new_tx, tx);
	if (err)
		return err;
	err = partlink_rx_alloc(pl, &new_rx, rx);
	if (err)
		goto err_tx;
	if (!partlink_rx_fill(pl, &new_rx, GFP_KERNEL)) {
		err = -ENOMEM;
		goto err_rx;
	}

	partlink_stop(netdev);
	pl->tx_ring_size = tx;
	pl->rx_ring_size = rx;
	partlink_tx_take(&pl->tx, &new_tx);
	partlink_rx_take(&pl->rx, &new_rx);
	err = partlink_open(netdev);
	if (!err)
		return 0;

	pl->tx_ring_size = old_tx;
	pl->rx_ring_size = old_rx;
	if (partlink_open(netdev))
		netdev_err(netdev, "cannot reopen after a ring change: %d\n",
			   err);
	return err;

err_rx:
	partlink_rx_free(pl, &new_rx);
err_tx:
	partlink_tx_free(pl, &new_tx);
	return err;
}

/* Received frames may span many pages: any MTU needs no new buffers. */
static int partlink_change_mtu(struct net_device *netdev, int new_mtu)
{
	WRITE_ONCE(netdev->mtu, new_mtu);
	return 0;
}

/* Copy a group of counters consistently. */
void partlink_stats_snapshot(struct u64_stats_sync *syncp,
			     const u64_stats_t *stats, u64 *out,
			     unsigned int n)
{
	unsigned int start, i;

	do {
		start = u64_stats_fetch_begin(syncp);
		for (i = 0; i < n; i++)
			out[i] = u64_stats_read(&stats[i]);
	} while (u64_stats_fetch_retry(syncp, start));
}

static void partlink_get_stats64(struct net_device *netdev,
				 struct rtnl_link_stats64 *stats)
{
	struct partlink_dev *pl = netdev_priv(netdev);
	u64 tx[PARTLINK_TXS_NR], rx[PARTLINK_RXS_NR];

	partlink_stats_snapshot(&pl->tx.syncp, pl->tx.stats, tx,
				PARTLINK_TXS_NR);
	partlink_stats_snapshot(&pl->rx.syncp, pl->rx.stats, rx,
				PARTLINK_RXS_NR);

	stats->tx_packets = tx[PARTLINK_TXS_PACKETS];
	stats->tx_bytes = tx[PARTLINK_TXS_BYTES];
	stats->tx_dropped = tx[PARTLINK_TXS_DROPPED];
	stats->tx_errors = tx[PARTLINK_TXS_ERRORS];
	stats->rx_packets = rx[PARTLINK_RXS_PACKETS];
	stats->rx_bytes = rx[PARTLINK_RXS_BYTES];
	stats->rx_dropped = rx[PARTLINK_RXS_DROPPED];
	stats->rx_errors = rx[PARTLINK_RXS_ERRORS];
	stats->rx_length_errors = rx[PARTLINK_RXS_BAD_LENGTH];
	/* Frames for us that senders dropped: our ring had no buffer. */
	stats->rx_missed_errors =
		partlink_read_counter(pl, PARTLINK_CTR_RX_NO_BUFFER);
}

static const struct net_device_ops partlink_netdev_ops = {
	.ndo_open		= partlink_open,
	.ndo_stop		= partlink_stop,
	.ndo_start_xmit		= partlink_start_xmit,
	.ndo_features_check	= partlink_features_check,
	.ndo_tx_timeout		= partlink_tx_timeout,
	.ndo_change_mtu		= partlink_change_mtu,
	.ndo_get_stats64	= partlink_get_stats64,
	.ndo_validate_addr	= eth_validate_addr,
};

/* Set up the net_device from what the device offers. */
void partlink_netdev_setup(struct partlink_dev *pl)
{
	struct net_device *netdev = pl->netdev;
	netdev_features_t features = NETIF_F_SG | NETIF_F_HIGHDMA;

	netdev->netdev_ops = &partlink_netdev_ops;
	netdev->watchdog_timeo = 5 * HZ;
	netdev->min_mtu = ETH_MIN_MTU;
	netdev->max_mtu = min_t(u32, PARTLINK_MTU_MAX,
				pl->max_packet - ETH_HLEN);

	if (pl->features & PARTLINK_F_CSUM)
		features |= NETIF_F_HW_CSUM | NETIF_F_RXCSUM;
	/* What virtio_net_hdr_from_skb() can describe. */
	if (pl->features & PARTLINK_F_GSO)
		features |= NETIF_F_TSO | NETIF_F_TSO6 | NETIF_F_TSO_ECN;

	netdev->hw_features = features & ~NETIF_F_HIGHDMA;
	netdev->features = features;
	netdev->vlan_features = features;
	netif_set_tso_max_size(netdev, pl->max_packet - ETH_HLEN);
}
