// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: the RX ring and NAPI
 *
 * The driver posts one page per RX entry.  A sender's device copies a
 * packet straight into them: one or more consecutive entries, MORE set on
 * all but the last, each entry's len the bytes in it, the offload
 * metadata (the values of struct virtio_net_hdr) in the first.  The first
 * page becomes the skb head (napi_build_skb()), the others its frags; the
 * pages come from a page_pool and go back to it when the skb is freed; a
 * frame of at most PARTLINK_RX_COPYBREAK bytes is copied instead and its
 * page posted again.
 *
 * The device is not trusted: every entry is read once, lengths and
 * chains are checked before they are used, and a ring index always comes
 * from the driver's own counters.
 */

#include <linux/interrupt.h>
#include <linux/virtio_net.h>
#include <net/page_pool.h>

#include "partlink.h"

/* What the poll loop keeps of a completed entry: read once, then checked. */
struct partlink_rx_entry {
	u32 len;
	u16 flags;
	u16 status;
};

/* Allocate an RX ring of @size entries into @rx, no buffers posted yet. */
int partlink_rx_alloc(struct partlink_dev *pl, struct partlink_rx_ring *rx,
		      u32 size)
{
	/* A maximal frame fits in the entries one packet may occupy. */
	BUILD_BUG_ON(PARTLINK_RX_MAX_ENTRIES > PARTLINK_MAX_SEGS);
	BUILD_BUG_ON(PARTLINK_RX_MAX_ENTRIES * PARTLINK_RX_BUF_LEN <
		     PARTLINK_MAX_PACKET);
	BUILD_BUG_ON(PARTLINK_RX_BUF_LEN < PARTLINK_RX_BUF_MIN);

	struct page_pool_params pp = {
		/* The pool maps each page once and syncs what the device used. */
		.flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV,
		.pool_size = size,
		.nid = dev_to_node(&pl->pdev->dev),
		.dev = &pl->pdev->dev,
		.dma_dir = DMA_FROM_DEVICE,
		.offset = NET_SKB_PAD,
		.max_len = PARTLINK_RX_BUF_LEN,
	};

	rx->pool = page_pool_create(&pp);
	if (IS_ERR(rx->pool)) {
		int err = PTR_ERR(rx->pool);

		rx->pool = NULL;
		return err;
	}
	rx->bufs = kcalloc(size, sizeof(*rx->bufs), GFP_KERNEL);
	if (!rx->bufs)
		goto err_pool;
	rx->desc = dma_alloc_coherent(&pl->pdev->dev, size * sizeof(*rx->desc),
				      &rx->desc_dma, GFP_KERNEL);
	if (!rx->desc) {
		kfree(rx->bufs);
		rx->bufs = NULL;
		goto err_pool;
	}
	rx->size = size;
	rx->next = 0;
	rx->fill = 0;
	rx->discard = false;
	return 0;

err_pool:
	page_pool_destroy(rx->pool);
	rx->pool = NULL;
	return -ENOMEM;
}

/* Free an RX ring and its pages; the device must not use it. */
void partlink_rx_free(struct partlink_dev *pl, struct partlink_rx_ring *rx)
{
	u32 i;

	if (!rx->desc)
		return;
	for (i = 0; i < rx->size; i++) {
		struct partlink_rx_buf *buf = &rx->bufs[i];

		if (!buf->page)
			continue;
		page_pool_put_full_page(rx->pool, buf->page, false);
		buf->page = NULL;
	}
	dma_free_coherent(&pl->pdev->dev, rx->size * sizeof(*rx->desc),
			  rx->desc, rx->desc_dma);
	rx->desc = NULL;
	kfree(rx->bufs);
	rx->bufs = NULL;
	/* Pages still in skbs come back to the pool later; it waits for them. */
	page_pool_destroy(rx->pool);
	rx->pool = NULL;
}

/* Hand the ring memory of @src over to @dst; @dst keeps its counters. */
void partlink_rx_take(struct partlink_rx_ring *dst,
		      struct partlink_rx_ring *src)
{
	dst->desc = src->desc;
	dst->desc_dma = src->desc_dma;
	dst->bufs = src->bufs;
	dst->size = src->size;
	dst->next = src->next;
	dst->fill = src->fill;
	dst->discard = src->discard;
	dst->pool = src->pool;
	src->desc = NULL;
	src->bufs = NULL;
	src->pool = NULL;
}

/*
 * Post a buffer in every empty entry of @rx, in ring order.  A slot whose
 * page was kept (a dropped or copied packet) is posted again as it is.
 * Returns false if a page could not be had.
 */
bool partlink_rx_fill(struct partlink_dev *pl, struct partlink_rx_ring *rx,
		      gfp_t gfp)
{
	while (rx->fill - rx->next < rx->size) {
		u32 idx = rx->fill & (rx->size - 1);
		struct partlink_rx_buf *buf = &rx->bufs[idx];
		struct partlink_desc *desc = &rx->desc[idx];

		if (!buf->page) {
			struct page *page;

			page = page_pool_alloc_pages(rx->pool,
						     gfp | __GFP_NOWARN);
			if (!page)
				goto fail;
			buf->page = page;
			buf->dma = page_pool_get_dma_addr(page) + NET_SKB_PAD;
		}

		desc->addr = cpu_to_le64(buf->dma);
		desc->len = cpu_to_le32(PARTLINK_RX_BUF_LEN);
		desc->status = 0;
		desc->csum_start = 0;
		desc->csum_offset = 0;
		desc->gso_size = 0;
		desc->gso_type = 0;
		desc->hdr_len = 0;
		desc->reserved = 0;
		desc->cookie = cpu_to_le32(idx);
		/* The entry is complete before the device may see it owned. */
		dma_wmb();
		WRITE_ONCE(desc->flags, cpu_to_le16(PARTLINK_DESC_OWN));
		rx->fill++;
	}
	return true;

fail:
	partlink_rx_stat(&pl->rx, PARTLINK_RXS_ALLOC_FAILED, 1);
	return false;
}

/* Refill the live ring; on failure the refill work retries. */
bool partlink_rx_refill(struct partlink_dev *pl, gfp_t gfp)
{
	return partlink_rx_fill(pl, &pl->rx, gfp);
}

static void partlink_refill_schedule(struct partlink_dev *pl,
				     unsigned long delay)
{
	spin_lock_bh(&pl->refill_lock);
	if (pl->refill_enabled)
		schedule_delayed_work(&pl->refill_work, delay);
	spin_unlock_bh(&pl->refill_lock);
}

/*
 * The ring ran dry in the poll, which may not sleep: refill it here with
 * GFP_KERNEL, NAPI held off meanwhile (the poll owns the ring).
 */
void partlink_refill_work(struct work_struct *work)
{
	struct partlink_dev *pl = container_of(to_delayed_work(work),
					       struct partlink_dev,
					       refill_work);
	bool refilled;

	napi_disable(&pl->napi);
	refilled = partlink_rx_refill(pl, GFP_KERNEL);
	napi_enable(&pl->napi);

	/* Packets may have come in while NAPI was off. */
	local_bh_disable();
	napi_schedule(&pl->napi);
	local_bh_enable();

	if (!refilled)
		partlink_refill_schedule(pl, HZ / 2);
}

/*
 * Allow or forbid the poll to schedule refill_work: partlink_stop()
 * forbids it before it cancels the work and disables NAPI, so that the
 * work never runs napi_disable() on a NAPI already disabled.
 */
void partlink_refill_enable(struct partlink_dev *pl, bool enable)
{
	spin_lock_bh(&pl->refill_lock);
	pl->refill_enabled = enable;
	spin_unlock_bh(&pl->refill_lock);
}

/* Read a completed entry once.  False if the device still owns it. */
static bool partlink_rx_read(struct partlink_rx_ring *rx, u32 pos,
			     struct partlink_rx_entry *e)
{
	struct partlink_desc *desc = &rx->desc[pos & (rx->size - 1)];

	e->flags = le16_to_cpu(READ_ONCE(desc->flags));
	if (e->flags & PARTLINK_DESC_OWN)
		return false;
	/* Read the rest of the entry only after seeing OWN clear. */
	dma_rmb();
	e->len = le32_to_cpu(READ_ONCE(desc->len));
	e->status = le16_to_cpu(READ_ONCE(desc->status));
	return true;
}

/*
 * True if the poll loop has work: a whole chain at rx->next is ours.  A
 * chain the device is still writing does not count: the device raises
 * the RX interrupt only after it has written the whole packet.
 */
static bool partlink_rx_pending(struct partlink_rx_ring *rx)
{
	u32 avail = rx->fill - rx->next;
	unsigned int n;

	for (n = 0; n < avail && n < PARTLINK_RX_MAX_ENTRIES; n++) {
		struct partlink_desc *desc;
		u16 flags;

		desc = &rx->desc[(rx->next + n) & (rx->size - 1)];
		flags = le16_to_cpu(READ_ONCE(desc->flags));
		if (flags & PARTLINK_DESC_OWN)
			return false;
		if (!(flags & PARTLINK_DESC_MORE) || rx->discard)
			return true;
	}
	return n == PARTLINK_RX_MAX_ENTRIES;
}

/* Fill a struct virtio_net_hdr from the first entry of a packet. */
static void partlink_rx_hdr(struct partlink_desc *desc, u16 flags,
			    struct virtio_net_hdr *hdr)
{
	memset(hdr, 0, sizeof(*hdr));
	if (flags & PARTLINK_DESC_NEEDS_CSUM)
		hdr->flags |= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	if (flags & PARTLINK_DESC_DATA_VALID)
		hdr->flags |= VIRTIO_NET_HDR_F_DATA_VALID;
	hdr->gso_type = READ_ONCE(desc->gso_type);
	hdr->hdr_len = __cpu_to_virtio16(true, READ_ONCE(desc->hdr_len));
	hdr->gso_size = __cpu_to_virtio16(true,
					  le16_to_cpu(READ_ONCE(desc->gso_size)));
	hdr->csum_start =
		__cpu_to_virtio16(true,
				  le16_to_cpu(READ_ONCE(desc->csum_start)));
	hdr->csum_offset =
		__cpu_to_virtio16(true,
				  le16_to_cpu(READ_ONCE(desc->csum_offset)));
}

/*
 * Build an skb from the n entries at rx->next, whose lengths are checked.
 * The pages go to the skb; on failure they stay in their slots and are
 * posted again.
 */
static struct sk_buff *partlink_rx_build(struct partlink_dev *pl,
					 const struct partlink_rx_entry *e,
					 unsigned int n)
{
	struct partlink_rx_ring *rx = &pl->rx;
	struct device *dev = &pl->pdev->dev;
	u32 mask = rx->size - 1;
	struct partlink_rx_buf *buf;
	struct sk_buff *skb;
	unsigned int i;

	/* napi_build_skb() writes only past the mapped part of the page. */
	buf = &rx->bufs[rx->next & mask];
	skb = napi_build_skb(page_address(buf->page), PAGE_SIZE);
	if (unlikely(!skb))
		return NULL;

	/* Freed, the skb's pages go back to the pool, still mapped. */
	skb_mark_for_recycle(skb);
	for (i = 0; i < n; i++) {
		buf = &rx->bufs[(rx->next + i) & mask];
		dma_sync_single_for_cpu(dev, buf->dma, e[i].len,
					DMA_FROM_DEVICE);
		if (i == 0) {
			skb_reserve(skb, NET_SKB_PAD);
			skb_put(skb, e[0].len);
		} else {
			skb_add_rx_frag(skb, i - 1, buf->page, NET_SKB_PAD,
					e[i].len, PAGE_SIZE);
		}
		buf->page = NULL;
	}
	return skb;
}

/*
 * A small frame in one entry: copy it into a new skb and leave the page
 * in its slot, so that the refill posts it again without allocating.
 */
static struct sk_buff *partlink_rx_copy(struct partlink_dev *pl, u32 len)
{
	struct partlink_rx_ring *rx = &pl->rx;
	struct partlink_rx_buf *buf = &rx->bufs[rx->next & (rx->size - 1)];
	struct device *dev = &pl->pdev->dev;
	struct sk_buff *skb;

	skb = napi_alloc_skb(&pl->napi, len);
	if (unlikely(!skb))
		return NULL;
	dma_sync_single_for_cpu(dev, buf->dma, len, DMA_FROM_DEVICE);
	skb_put_data(skb, page_address(buf->page) + NET_SKB_PAD, len);
	dma_sync_single_for_device(dev, buf->dma, len, DMA_FROM_DEVICE);
	partlink_rx_stat(rx, PARTLINK_RXS_COPYBREAK, 1);
	return skb;
}

/* Hand a packet to the stack, or drop it if its offloads are bad. */
static void partlink_rx_deliver(struct partlink_dev *pl, struct sk_buff *skb,
				struct partlink_desc *first, u16 flags)
{
	struct partlink_rx_ring *rx = &pl->rx;
	struct net_device *netdev = pl->netdev;
	struct virtio_net_hdr hdr;
	unsigned int len = skb->len;

	partlink_rx_hdr(first, flags, &hdr);
	if ((hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID) &&
	    (netdev->features & NETIF_F_RXCSUM))
		skb->ip_summed = CHECKSUM_UNNECESSARY;
	if (virtio_net_hdr_to_skb(skb, &hdr, true)) {
		net_dbg_ratelimited("%s: bad offload: flags %#x csum %u/%u gso %#x/%u\n",
				    netdev->name, hdr.flags,
				    __virtio16_to_cpu(true, hdr.csum_start),
				    __virtio16_to_cpu(true, hdr.csum_offset),
				    hdr.gso_type,
				    __virtio16_to_cpu(true, hdr.gso_size));
		u64_stats_update_begin(&rx->syncp);
		u64_stats_inc(&rx->stats[PARTLINK_RXS_BAD_OFFLOAD]);
		u64_stats_inc(&rx->stats[PARTLINK_RXS_DROPPED]);
		u64_stats_update_end(&rx->syncp);
		kfree_skb(skb);
		return;
	}
	skb->protocol = eth_type_trans(skb, netdev);

	u64_stats_update_begin(&rx->syncp);
	u64_stats_inc(&rx->stats[PARTLINK_RXS_PACKETS]);
	u64_stats_add(&rx->stats[PARTLINK_RXS_BYTES], len);
	if (skb_is_gso(skb))
		u64_stats_inc(&rx->stats[PARTLINK_RXS_GSO]);
	if (skb->ip_summed == CHECKSUM_PARTIAL)
		u64_stats_inc(&rx->stats[PARTLINK_RXS_CSUM_PARTIAL]);
	else if (skb->ip_summed == CHECKSUM_UNNECESSARY)
		u64_stats_inc(&rx->stats[PARTLINK_RXS_CSUM_VALID]);
	u64_stats_update_end(&rx->syncp);

	napi_gro_receive(&pl->napi, skb);
}

/*
 * Drop the n entries at rx->next.  Their pages are posted again, except
 * after an error status: the device refused those buffers, so they are
 * replaced.
 */
static void partlink_rx_drop(struct partlink_dev *pl, unsigned int n,
			     enum partlink_rx_stat why)
{
	struct partlink_rx_ring *rx = &pl->rx;
	unsigned int i;

	if (why == PARTLINK_RXS_BAD_STATUS) {
		for (i = 0; i < n; i++) {
			struct partlink_rx_buf *buf;

			buf = &rx->bufs[(rx->next + i) & (rx->size - 1)];
			page_pool_put_full_page(rx->pool, buf->page, false);
			buf->page = NULL;
		}
	}

	u64_stats_update_begin(&rx->syncp);
	u64_stats_inc(&rx->stats[why]);
	u64_stats_inc(&rx->stats[why == PARTLINK_RXS_SKB_FAILED ?
				 PARTLINK_RXS_DROPPED : PARTLINK_RXS_ERRORS]);
	u64_stats_update_end(&rx->syncp);
	rx->next += n;
}

/*
 * Take the packet at rx->next off the ring.  Returns false if there is
 * none yet: the next entry, or one further on in its chain, is still the
 * device's.
 */
static bool partlink_rx_one(struct partlink_dev *pl)
{
	struct partlink_rx_entry e[PARTLINK_RX_MAX_ENTRIES];
	struct partlink_rx_ring *rx = &pl->rx;
	u32 avail = rx->fill - rx->next;
	enum partlink_rx_stat bad = PARTLINK_RXS_NR;
	unsigned int n = 0, i;
	struct sk_buff *skb;
	u32 total = 0;

	/* The rest of a chain that was too long: drop it entry by entry. */
	if (unlikely(rx->discard)) {
		if (!avail || !partlink_rx_read(rx, rx->next, &e[0]))
			return false;
		rx->next++;
		if (!(e[0].flags & PARTLINK_DESC_MORE))
			rx->discard = false;
		return true;
	}

	/* Find the whole chain; every entry is read once, here. */
	for (;;) {
		if (n == avail || !partlink_rx_read(rx, rx->next + n, &e[n]))
			return false;
		n++;
		if (!(e[n - 1].flags & PARTLINK_DESC_MORE))
			break;
		if (n == PARTLINK_RX_MAX_ENTRIES) {
			rx->discard = true;
			partlink_rx_drop(pl, n, PARTLINK_RXS_BAD_CHAIN);
			return true;
		}
	}

	for (i = 0; i < n; i++) {
		if (e[i].status != PARTLINK_ST_OK)
			bad = PARTLINK_RXS_BAD_STATUS;
		else if (!e[i].len || e[i].len > PARTLINK_RX_BUF_LEN)
			bad = PARTLINK_RXS_BAD_LENGTH;
		else
			total += e[i].len;
	}
	if (bad == PARTLINK_RXS_NR &&
	    (e[0].len < ETH_HLEN || total > PARTLINK_MAX_PACKET))
		bad = PARTLINK_RXS_BAD_LENGTH;
	if (unlikely(bad != PARTLINK_RXS_NR)) {
		net_dbg_ratelimited("%s: bad RX entry %u: %u entries, status %u, len %u, total %u\n",
				    pl->netdev->name, rx->next & (rx->size - 1),
				    n, e[0].status, e[0].len, total);
		partlink_rx_drop(pl, n, bad);
		return true;
	}

	if (n == 1 && e[0].len <= PARTLINK_RX_COPYBREAK)
		skb = partlink_rx_copy(pl, e[0].len);
	else
		skb = partlink_rx_build(pl, e, n);
	if (unlikely(!skb)) {
		partlink_rx_drop(pl, n, PARTLINK_RXS_SKB_FAILED);
		return true;
	}
	partlink_rx_deliver(pl, skb, &rx->desc[rx->next & (rx->size - 1)],
			    e[0].flags);
	rx->next += n;
	return true;
}

int partlink_poll(struct napi_struct *napi, int budget)
{
	struct partlink_dev *pl = container_of(napi, struct partlink_dev, napi);
	struct partlink_rx_ring *rx = &pl->rx;
	bool refilled;
	int done = 0;

	partlink_rx_stat(rx, PARTLINK_RXS_POLLS, 1);
	partlink_tx_clean(pl);
	while (done < budget && partlink_rx_one(pl)) {
		done++;
		/* Big packets use many entries: give the device new ones. */
		if (rx->size - (rx->fill - rx->next) >= PARTLINK_RX_REFILL_BATCH)
			partlink_rx_refill(pl, GFP_ATOMIC);
	}
	refilled = partlink_rx_refill(pl, GFP_ATOMIC);
	if (unlikely(!refilled))
		partlink_refill_schedule(pl, 0);

	if (done < budget && napi_complete_done(napi, done)) {
		/*
		 * Arm the next interrupt in memory, then look once more: a
		 * peer or the device may have found it unarmed just before.
		 */
		WRITE_ONCE(pl->notify->irq_armed, cpu_to_le32(1));
		/* Pairs with the raiser's exchange after its hand-back. */
		virt_mb();
		if (partlink_rx_pending(rx) || partlink_tx_done_pending(pl))
			napi_schedule(napi);
	}
	return done;
}

irqreturn_t partlink_rx_irq(int irq, void *data)
{
	struct partlink_dev *pl = data;

	/* Whoever raised it cleared irq_armed: no more until the poll ends. */
	partlink_rx_stat(&pl->rx, PARTLINK_RXS_IRQS, 1);
	napi_schedule(&pl->napi);
	return IRQ_HANDLED;
}
