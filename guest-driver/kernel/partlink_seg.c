// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: shared segments, /dev/partlink/seg/<name>
 *
 * The device places every segment this partition may use in the BAR 2
 * window and describes it in a read-only table in BAR 0 (the ABI header's
 * "Shared segments").  Each valid entry becomes a character device with
 * the table's name, owner, group and mode: mmap maps the segment, read()
 * and poll() wait for its doorbell, PARTLINK_SEG_IOC_RING rings it.
 *
 * Objects.  struct partlink_segs is the adapter's: the window, the SEG
 * interrupt, the table.  struct partlink_seg is one segment, reference
 * counted: the table slot holds a reference while the entry lasts, every
 * open file and every VMA another, so that it outlives its device node,
 * a table change and the adapter itself.  struct partlink_seg_node is
 * only the device node, replaced when the owner, group or mode change;
 * open() finds the segment by minor, as uio does, so that no file ever
 * points into a node.
 *
 * Revocation (a table change, remove), as vfio-pci and DRM do it: the
 * segment is marked revoked under seg->lock, then every open file's
 * mapping is zapped with unmap_mapping_range().  The fault handler checks
 * the mark under the same lock before it inserts a PFN, so no PTE can
 * appear after the zap: the next access raises SIGBUS, and read, ioctl
 * and mmap answer ENODEV.
 *
 * Locking, outer first:
 *   segs->lock -> partlink_seg_minor_lock
 *              -> seg->lock (write)
 *              -> seg->files_lock -> i_mmap_rwsem (unmap_mapping_range)
 *   mmap_lock (a fault) -> seg->lock (read) -> segs->ring_lock
 *   segs->slots_lock and pl->irq_lock are innermost spinlocks.
 * Nothing copies to or from user space under seg->lock: a fault there
 * would take mmap_lock inside it, against the order of the fault path.
 *
 * Module lifetime.  The cdev's owner is this module, so every open file
 * pins it (chrdev_open() takes a module reference for its fops, __fput()
 * drops it), and a VMA holds its vm_file until it is unmapped: the vm_ops
 * and the fault handler stay loaded as long as any mapping exists, and
 * rmmod refuses meanwhile.  Unbinding the adapter does not wait for user
 * space: it revokes, and the files live on, answering ENODEV, until closed.
 */

#include <linux/atomic.h>
#include <linux/bitops.h>
#include <linux/cdev.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "partlink.h"

#define PARTLINK_SEG_CLASS		"partlink-seg"
/* Minors for every adapter's segments: eight full tables. */
#define PARTLINK_SEG_MINORS		256
/* Reads of a table that keeps changing under the scan, at most */
#define PARTLINK_SEG_SCAN_TRIES		4
#define PARTLINK_SEG_ENTRY_WORDS	(PARTLINK_SEG_ENTRY_SIZE / 4)
/* The largest port that SEG_RING carries below the ALL bit */
#define PARTLINK_SEG_RING_PORT_MAX	\
	((PARTLINK_SEG_RING_ALL - 1) >> PARTLINK_SEG_RING_PORT_SHIFT)
#define PARTLINK_SEG_FLAGS		(PARTLINK_SEG_PRESENT | \
					 PARTLINK_SEG_READ_ONLY | \
					 PARTLINK_SEG_PINNED)
/*
 * Flags that change what a mapping may do.  PINNED only says how the host
 * keeps the memory: a change of it updates the entry like a new owner.
 */
#define PARTLINK_SEG_MAP_FLAGS		(PARTLINK_SEG_PRESENT | \
					 PARTLINK_SEG_READ_ONLY)

/* A table entry the driver checked, in CPU byte order. */
struct partlink_seg_desc {
	char name[PARTLINK_SEG_NAME_LEN];	/* NUL-padded */
	u64 offset;
	u64 size;
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	u32 flags;
	u32 id;
	bool valid;
};

/* The device node: what devtmpfs and uevents ask for, fixed for its life. */
struct partlink_seg_node {
	struct device dev;
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	char name[PARTLINK_SEG_NAME_LEN];
};

struct partlink_seg {
	struct kref ref;
	/*
	 * Readers use segs and the BAR (ioctls, faults); held for writing
	 * only to revoke, and to change desc's name and flags.
	 */
	struct rw_semaphore lock;
	bool revoked;
	struct partlink_segs *segs;	/* NULL once revoked */
	struct mutex files_lock;	/* guards files */
	struct list_head files;		/* struct partlink_seg_file.node */
	wait_queue_head_t wait;		/* doorbells and revocation */
	atomic64_t rings;		/* doorbells received */

	/*
	 * offset, size, id and the MAP_FLAGS are fixed for the object's
	 * life; the rest changes under segs->lock and seg->lock (write).
	 */
	struct partlink_seg_desc desc;
	bool read_only;			/* desc.flags' READ_ONLY */
	phys_addr_t phys;		/* of the segment in BAR 2 */
	unsigned long pages;
	unsigned int slot;
	int minor;
	struct partlink_seg_node *node;	/* segs->lock; NULL if none */
};

/* An open file of a segment. */
struct partlink_seg_file {
	struct list_head node;		/* in seg->files */
	struct partlink_seg *seg;
	struct file *file;
	atomic64_t seen;		/* ring count read() returned last */
};

struct partlink_segs {
	struct partlink_dev *pl;
	resource_size_t bar_start;
	resource_size_t bar_len;
	void *bar_wb;			/* holds the memtype, see probe */
	int irq;
	char irq_name[32];
	struct work_struct work;	/* rings and table changes */
	struct mutex lock;		/* the table: scans, slots[] changes */
	struct mutex ring_lock;		/* SEG_RING with its SEG_RING_STATUS */
	spinlock_t slots_lock;		/* slots[] against the interrupt */
	struct partlink_seg *slots[PARTLINK_SEG_SLOTS];
	u32 generation;			/* of the table slots[] shows */
	bool scanned;			/* generation is valid */
	/* the scan's copy of the table; segs->lock */
	struct partlink_seg_entry raw[PARTLINK_SEG_SLOTS];
	struct partlink_seg_desc table[PARTLINK_SEG_SLOTS];
	atomic64_t stats[PARTLINK_SEGS_NR];
};

static dev_t partlink_seg_devt;
static struct cdev partlink_seg_cdev;
static struct class *partlink_seg_class;
/* minor -> struct partlink_seg for open(), until the segment is revoked */
static DEFINE_IDR(partlink_seg_idr);
static DEFINE_MUTEX(partlink_seg_minor_lock);

static void partlink_seg_free(struct kref *ref)
{
	struct partlink_seg *seg = container_of(ref, struct partlink_seg, ref);

	mutex_destroy(&seg->files_lock);
	kfree(seg);
}

static void partlink_seg_put(struct partlink_seg *seg)
{
	kref_put(&seg->ref, partlink_seg_free);
}

/* Count the doorbells of a SEG_PENDING value; any context. */
static void partlink_seg_rung(struct partlink_segs *segs, u32 pending)
{
	unsigned long bits = pending;
	struct partlink_seg *seg;
	unsigned long flags;
	unsigned int slot;

	if (!pending)
		return;
	spin_lock_irqsave(&segs->slots_lock, flags);
	for_each_set_bit(slot, &bits, PARTLINK_SEG_SLOTS) {
		seg = segs->slots[slot];
		/* A segment the driver has not seen yet, or one just gone */
		if (!seg)
			continue;
		atomic64_inc(&seg->rings);
		atomic64_inc(&segs->stats[PARTLINK_SEGS_RINGS]);
		wake_up_interruptible_poll(&seg->wait, EPOLLIN | EPOLLRDNORM);
	}
	spin_unlock_irqrestore(&segs->slots_lock, flags);
}

static irqreturn_t partlink_seg_irq(int irq, void *data)
{
	struct partlink_segs *segs = data;
	struct partlink_dev *pl = segs->pl;

	partlink_seg_rung(segs, partlink_rd(pl, PARTLINK_REG_SEG_PENDING));
	/* Device nodes and revocation sleep: the scan is the work's. */
	if (partlink_rd(pl, PARTLINK_REG_SEG_GENERATION) !=
	    READ_ONCE(segs->generation))
		schedule_work(&segs->work);
	return IRQ_HANDLED;
}

/*
 * Called by partlink_reset(), which cleared IRQ_CTRL and set SEG again:
 * look for what the SEG interrupt would have said meanwhile.  SEG is set
 * only while pl->segs and its work exist.
 */
void partlink_seg_kick(struct partlink_dev *pl)
{
	unsigned long flags;

	spin_lock_irqsave(&pl->irq_lock, flags);
	if (pl->irq_ctrl & PARTLINK_IRQ_SEG)
		schedule_work(&pl->segs->work);
	spin_unlock_irqrestore(&pl->irq_lock, flags);
}

static char *partlink_seg_devnode(struct device *dev, umode_t *mode,
				  kuid_t *uid, kgid_t *gid)
{
	struct partlink_seg_node *node =
		container_of(dev, struct partlink_seg_node, dev);

	/* devtmpfs asks for the name alone when it deletes the node. */
	if (mode)
		*mode = node->mode;
	if (uid)
		*uid = node->uid;
	if (gid)
		*gid = node->gid;
	return kasprintf(GFP_KERNEL, "partlink/seg/%s", node->name);
}

/*
 * Owner and group need the device type's devnode: in 6.1 the class's
 * devnode can set only the mode.
 */
static const struct device_type partlink_seg_type = {
	.name		= PARTLINK_SEG_CLASS,
	.devnode	= partlink_seg_devnode,
};

static void partlink_seg_node_release(struct device *dev)
{
	kfree(container_of(dev, struct partlink_seg_node, dev));
}

/* Create the device node of @seg as its desc says.  segs->lock held. */
static struct partlink_seg_node *
partlink_seg_node_add(struct partlink_segs *segs, struct partlink_seg *seg)
{
	struct partlink_seg_node *node;
	int err;

	node = kzalloc(sizeof(*node), GFP_KERNEL);
	if (!node)
		return ERR_PTR(-ENOMEM);
	node->mode = seg->desc.mode;
	node->uid = seg->desc.uid;
	node->gid = seg->desc.gid;
	/*
	 * devtmpfs makes mode 0 into 0600 for the owner: give such a node to
	 * root, whom mode 0 does not stop anyway.
	 */
	if (!node->mode) {
		node->uid = GLOBAL_ROOT_UID;
		node->gid = GLOBAL_ROOT_GID;
	}
	memcpy(node->name, seg->desc.name, sizeof(node->name));

	device_initialize(&node->dev);
	node->dev.class = partlink_seg_class;
	node->dev.type = &partlink_seg_type;
	node->dev.parent = &segs->pl->pdev->dev;
	node->dev.devt = MKDEV(MAJOR(partlink_seg_devt), seg->minor);
	node->dev.release = partlink_seg_node_release;
	err = dev_set_name(&node->dev, "%s", node->name);
	if (!err)
		err = device_add(&node->dev);
	if (err) {
		put_device(&node->dev);
		return ERR_PTR(err);
	}
	return node;
}

/*
 * End @seg for everyone but its references: no new opens, no device access,
 * no mapping.  Drops the caller's reference.  segs->lock held, or @seg was
 * never published.
 */
static void partlink_seg_kill(struct partlink_seg *seg)
{
	struct partlink_seg_file *pf;

	mutex_lock(&partlink_seg_minor_lock);
	idr_remove(&partlink_seg_idr, seg->minor);
	mutex_unlock(&partlink_seg_minor_lock);

	/* A fault that saw revoked clear has inserted its PFN by now ... */
	down_write(&seg->lock);
	WRITE_ONCE(seg->revoked, true);
	seg->segs = NULL;
	up_write(&seg->lock);
	wake_up_all(&seg->wait);

	/* ... so that this zap catches it, and every later fault sees revoked. */
	mutex_lock(&seg->files_lock);
	list_for_each_entry(pf, &seg->files, node)
		unmap_mapping_range(pf->file->f_mapping, 0, 0, 1);
	mutex_unlock(&seg->files_lock);

	partlink_seg_put(seg);
}

/* Take the segment out of @slot and revoke it.  segs->lock held. */
static void partlink_seg_revoke(struct partlink_segs *segs, unsigned int slot)
{
	struct partlink_seg *seg = segs->slots[slot];

	spin_lock_irq(&segs->slots_lock);
	segs->slots[slot] = NULL;
	spin_unlock_irq(&segs->slots_lock);

	dev_info(&segs->pl->pdev->dev, "segment %s (slot %u) removed\n",
		 seg->desc.name, slot);
	/* The path goes before the minor can serve another segment. */
	if (seg->node)
		device_unregister(&seg->node->dev);
	seg->node = NULL;
	partlink_seg_kill(seg);
}

/* Make a segment of the valid entry @d in @slot.  segs->lock held. */
static void partlink_seg_create(struct partlink_segs *segs, unsigned int slot,
				const struct partlink_seg_desc *d)
{
	struct device *dev = &segs->pl->pdev->dev;
	struct partlink_seg_node *node;
	struct partlink_seg *seg;
	int minor;

	seg = kzalloc(sizeof(*seg), GFP_KERNEL);
	if (!seg)
		goto fail;
	kref_init(&seg->ref);
	init_rwsem(&seg->lock);
	mutex_init(&seg->files_lock);
	INIT_LIST_HEAD(&seg->files);
	init_waitqueue_head(&seg->wait);
	atomic64_set(&seg->rings, 0);
	seg->segs = segs;
	seg->desc = *d;
	seg->read_only = d->flags & PARTLINK_SEG_READ_ONLY;
	seg->phys = segs->bar_start + d->offset;
	seg->pages = d->size >> PAGE_SHIFT;
	seg->slot = slot;

	/* Cyclic: a minor just freed is the last to serve a new segment. */
	mutex_lock(&partlink_seg_minor_lock);
	minor = idr_alloc_cyclic(&partlink_seg_idr, seg, 0, PARTLINK_SEG_MINORS,
				 GFP_KERNEL);
	mutex_unlock(&partlink_seg_minor_lock);
	if (minor < 0) {
		partlink_seg_put(seg);
		goto fail;
	}
	seg->minor = minor;

	node = partlink_seg_node_add(segs, seg);
	if (IS_ERR(node)) {
		dev_warn(dev, "segment %s: cannot create its device node: %ld\n",
			 d->name, PTR_ERR(node));
		/* open() may have found it by its minor meanwhile. */
		partlink_seg_kill(seg);
		return;
	}
	seg->node = node;

	spin_lock_irq(&segs->slots_lock);
	segs->slots[slot] = seg;
	spin_unlock_irq(&segs->slots_lock);

	dev_info(dev, "segment %s (slot %u, id %u): %llu KiB%s%s, /dev/partlink/seg/%s %u:%u %04o\n",
		 d->name, slot, d->id, d->size >> 10,
		 d->flags & PARTLINK_SEG_READ_ONLY ? ", read-only" : "",
		 d->flags & PARTLINK_SEG_PINNED ? ", pinned" : "", d->name,
		 from_kuid(&init_user_ns, node->uid),
		 from_kgid(&init_user_ns, node->gid), node->mode);
	return;

fail:
	dev_warn(dev, "segment %s: out of memory or minors\n", d->name);
}

/*
 * The same memory under a new name, owner, group, mode or PINNED: mappings
 * and open files stay.  A device node whose path or permissions change
 * goes, to be made anew by partlink_seg_node_publish() once every stale
 * node of the scan is gone (two entries may swap names).  segs->lock held.
 */
static void partlink_seg_update(struct partlink_seg *seg,
				const struct partlink_seg_desc *d)
{
	const struct partlink_seg_desc *o = &seg->desc;

	if (seg->node && (strcmp(o->name, d->name) || !uid_eq(o->uid, d->uid) ||
			  !gid_eq(o->gid, d->gid) || o->mode != d->mode)) {
		device_unregister(&seg->node->dev);
		seg->node = NULL;
	}

	down_write(&seg->lock);
	seg->desc = *d;
	up_write(&seg->lock);
}

static void partlink_seg_node_publish(struct partlink_segs *segs,
				      struct partlink_seg *seg)
{
	struct device *dev = &segs->pl->pdev->dev;
	struct partlink_seg_node *node;

	node = partlink_seg_node_add(segs, seg);
	if (IS_ERR(node)) {
		dev_warn(dev, "segment %s: cannot create its device node: %ld\n",
			 seg->desc.name, PTR_ERR(node));
		return;
	}
	seg->node = node;
	dev_info(dev, "segment %s (slot %u): now %u:%u %04o\n",
		 seg->desc.name, seg->slot, from_kuid(&init_user_ns, node->uid),
		 from_kgid(&init_user_ns, node->gid), node->mode);
}

/* The name becomes a path: one component of a portable file name. */
static bool partlink_seg_name_ok(const char *name)
{
	size_t len = strnlen(name, PARTLINK_SEG_NAME_LEN);
	size_t i;

	if (len == 0 || len == PARTLINK_SEG_NAME_LEN)
		return false;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	/* Not isalnum(): the kernel's ctype takes Latin-1 letters too. */
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/*
 * Decode the entry of @slot into @d and check it: the table comes from
 * outside the partition.  Returns false for a free or a bad entry.
 */
static bool partlink_seg_check(struct partlink_segs *segs, unsigned int slot,
			       const struct partlink_seg_entry *e,
			       struct partlink_seg_desc *d)
{
	u32 uid = le32_to_cpu(e->uid), gid = le32_to_cpu(e->gid);
	const char *why = NULL;

	memset(d, 0, sizeof(*d));
	d->flags = le16_to_cpu(e->flags) & PARTLINK_SEG_FLAGS;
	if (!(d->flags & PARTLINK_SEG_PRESENT))
		return false;

	if (!partlink_seg_name_ok(e->name)) {
		dev_warn_ratelimited(&segs->pl->pdev->dev,
				     "segment table slot %u: bad name, skipped\n",
				     slot);
		atomic64_inc(&segs->stats[PARTLINK_SEGS_BAD_ENTRIES]);
		return false;
	}
	strscpy_pad(d->name, e->name, sizeof(d->name));
	d->offset = le64_to_cpu(e->offset);
	d->size = le64_to_cpu(e->size);
	d->uid = make_kuid(&init_user_ns, uid);
	d->gid = make_kgid(&init_user_ns, gid);
	d->mode = le16_to_cpu(e->mode);
	d->id = le32_to_cpu(e->id);

	if (!d->size || !IS_ALIGNED(d->offset, PAGE_SIZE) ||
	    !IS_ALIGNED(d->size, PAGE_SIZE))
		why = "offset or size not page-aligned, or size 0";
	else if (d->offset >= segs->bar_len ||
		 d->size > segs->bar_len - d->offset)
		why = "outside BAR 2";
	else if (d->mode & ~0777)
		why = "mode beyond 0777";
	else if (!uid_valid(d->uid) || !gid_valid(d->gid))
		why = "invalid owner or group";
	if (why) {
		dev_warn_ratelimited(&segs->pl->pdev->dev,
				     "segment table slot %u (%s): %s, skipped\n",
				     slot, d->name, why);
		atomic64_inc(&segs->stats[PARTLINK_SEGS_BAD_ENTRIES]);
		return false;
	}
	return true;
}

/* Read the entry of @slot with 32-bit loads, as the device answers them. */
static void partlink_seg_read_entry(struct partlink_segs *segs,
				    unsigned int slot,
				    struct partlink_seg_entry *e)
{
	unsigned int reg = PARTLINK_REG_SEG_TABLE +
			   slot * PARTLINK_SEG_ENTRY_SIZE;
	__le32 words[PARTLINK_SEG_ENTRY_WORDS];
	unsigned int i;

	for (i = 0; i < PARTLINK_SEG_ENTRY_WORDS; i++)
		words[i] = cpu_to_le32(partlink_rd(segs->pl, reg + 4 * i));
	memcpy(e, words, sizeof(words));
}

/*
 * Read a consistent copy of the table into segs->raw: the device counts
 * every change in SEG_GENERATION, so an unchanged generation around the
 * reads means no entry tore.  A table that never settles is taken as read;
 * the change still to come raises the SEG vector and another scan.
 */
static u32 partlink_seg_read_table(struct partlink_segs *segs)
{
	struct partlink_dev *pl = segs->pl;
	unsigned int slot, n, tries;
	u32 gen;

	for (tries = 1; ; tries++) {
		gen = partlink_rd(pl, PARTLINK_REG_SEG_GENERATION);
		n = min_t(u32, partlink_rd(pl, PARTLINK_REG_SEG_SLOTS),
			  PARTLINK_SEG_SLOTS);
		memset(segs->raw, 0, sizeof(segs->raw));
		for (slot = 0; slot < n; slot++)
			partlink_seg_read_entry(segs, slot, &segs->raw[slot]);
		if (partlink_rd(pl, PARTLINK_REG_SEG_GENERATION) == gen ||
		    tries == PARTLINK_SEG_SCAN_TRIES)
			return gen;
	}
}

/* Same memory, same access: mappings of the old entry stay good. */
static bool partlink_seg_same(const struct partlink_seg_desc *a,
			      const struct partlink_seg_desc *b)
{
	return a->id == b->id && a->offset == b->offset &&
	       a->size == b->size &&
	       (a->flags & PARTLINK_SEG_MAP_FLAGS) ==
	       (b->flags & PARTLINK_SEG_MAP_FLAGS);
}

static bool partlink_seg_attrs_same(const struct partlink_seg_desc *a,
				    const struct partlink_seg_desc *b)
{
	return !strcmp(a->name, b->name) && uid_eq(a->uid, b->uid) &&
	       gid_eq(a->gid, b->gid) && a->mode == b->mode &&
	       a->flags == b->flags;
}

/* Bring slots[] and the device nodes in line with the table. */
static void partlink_seg_scan(struct partlink_segs *segs)
{
	struct partlink_seg_desc *d;
	struct partlink_seg *seg;
	unsigned int slot, i;
	u32 gen;

	lockdep_assert_held(&segs->lock);

	gen = partlink_seg_read_table(segs);
	for (slot = 0; slot < PARTLINK_SEG_SLOTS; slot++) {
		d = &segs->table[slot];
		d->valid = partlink_seg_check(segs, slot, &segs->raw[slot], d);
		/* One path per name: the first entry keeps it. */
		for (i = 0; d->valid && i < slot; i++) {
			if (segs->table[i].valid &&
			    !strcmp(segs->table[i].name, d->name)) {
				dev_warn_ratelimited(&segs->pl->pdev->dev,
						     "segment table slot %u (%s): name taken by slot %u, skipped\n",
						     slot, d->name, i);
				atomic64_inc(&segs->stats[PARTLINK_SEGS_BAD_ENTRIES]);
				d->valid = false;
			}
		}
	}

	/* Every stale node goes first, so that names can move between slots. */
	for (slot = 0; slot < PARTLINK_SEG_SLOTS; slot++) {
		d = &segs->table[slot];
		seg = segs->slots[slot];
		if (!seg)
			continue;
		if (!d->valid || !partlink_seg_same(&seg->desc, d))
			partlink_seg_revoke(segs, slot);
		else if (!partlink_seg_attrs_same(&seg->desc, d))
			partlink_seg_update(seg, d);
	}
	for (slot = 0; slot < PARTLINK_SEG_SLOTS; slot++) {
		d = &segs->table[slot];
		seg = segs->slots[slot];
		if (!d->valid)
			continue;
		/* also retries a node that could not be made last time */
		if (!seg)
			partlink_seg_create(segs, slot, d);
		else if (!seg->node)
			partlink_seg_node_publish(segs, seg);
	}

	/*
	 * Nothing maps what this generation removed any more: the device may
	 * now give its window range and slot to another segment.
	 */
	partlink_wr(segs->pl, PARTLINK_REG_SEG_ACK, gen);
	WRITE_ONCE(segs->generation, gen);
	segs->scanned = true;
}

static void partlink_seg_work(struct work_struct *work)
{
	struct partlink_segs *segs =
		container_of(work, struct partlink_segs, work);
	struct partlink_dev *pl = segs->pl;

	/* Rings that came while IRQ_CTRL.SEG was clear around a reset */
	partlink_seg_rung(segs, partlink_rd(pl, PARTLINK_REG_SEG_PENDING));

	mutex_lock(&segs->lock);
	if (!segs->scanned ||
	    partlink_rd(pl, PARTLINK_REG_SEG_GENERATION) != segs->generation)
		partlink_seg_scan(segs);
	mutex_unlock(&segs->lock);
}

static int partlink_seg_open(struct inode *inode, struct file *file)
{
	struct partlink_seg_file *pf;
	struct partlink_seg *seg;

	mutex_lock(&partlink_seg_minor_lock);
	seg = idr_find(&partlink_seg_idr, iminor(inode));
	if (seg)
		kref_get(&seg->ref);
	mutex_unlock(&partlink_seg_minor_lock);
	if (!seg)
		return -ENODEV;

	/* The file mode is the VFS's to enforce; READ_ONLY is the host's. */
	if (seg->read_only && (file->f_mode & FMODE_WRITE)) {
		partlink_seg_put(seg);
		return -EROFS;
	}

	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf) {
		partlink_seg_put(seg);
		return -ENOMEM;
	}
	pf->seg = seg;
	pf->file = file;
	/* A new file waits for the next doorbell, not for old ones. */
	atomic64_set(&pf->seen, atomic64_read(&seg->rings));

	mutex_lock(&seg->files_lock);
	list_add(&pf->node, &seg->files);
	mutex_unlock(&seg->files_lock);

	file->private_data = pf;
	return nonseekable_open(inode, file);
}

/* A VMA keeps its file open: this runs after the last mapping is gone. */
static int partlink_seg_release(struct inode *inode, struct file *file)
{
	struct partlink_seg_file *pf = file->private_data;
	struct partlink_seg *seg = pf->seg;

	mutex_lock(&seg->files_lock);
	list_del(&pf->node);
	mutex_unlock(&seg->files_lock);
	partlink_seg_put(seg);
	kfree(pf);
	return 0;
}

static bool partlink_seg_unread(struct partlink_seg_file *pf)
{
	return atomic64_read(&pf->seg->rings) != atomic64_read(&pf->seen);
}

static ssize_t partlink_seg_read(struct file *file, char __user *buf,
				 size_t len, loff_t *ppos)
{
	struct partlink_seg_file *pf = file->private_data;
	struct partlink_seg *seg = pf->seg;
	u64 count, seen;
	int err;

	if (len != sizeof(count))
		return -EINVAL;

	for (;;) {
		if (READ_ONCE(seg->revoked))
			return -ENODEV;
		seen = atomic64_read(&pf->seen);
		count = atomic64_read(&seg->rings);
		/* Of two readers of one file, one gets each new count. */
		if (count != seen) {
			if (atomic64_cmpxchg(&pf->seen, seen, count) == seen)
				break;
			continue;
		}
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		err = wait_event_interruptible(seg->wait,
					       partlink_seg_unread(pf) ||
					       READ_ONCE(seg->revoked));
		if (err)
			return err;
	}

	if (copy_to_user(buf, &count, sizeof(count))) {
		/* Not delivered: leave it for the next read. */
		atomic64_cmpxchg(&pf->seen, count, seen);
		return -EFAULT;
	}
	return sizeof(count);
}

static __poll_t partlink_seg_poll(struct file *file, poll_table *wait)
{
	struct partlink_seg_file *pf = file->private_data;
	struct partlink_seg *seg = pf->seg;

	poll_wait(file, &seg->wait, wait);
	if (READ_ONCE(seg->revoked))
		return EPOLLERR | EPOLLHUP;
	if (partlink_seg_unread(pf))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

static long partlink_seg_ioc_info(struct partlink_seg *seg, void __user *uarg)
{
	struct partlink_seg_info info = { };

	down_read(&seg->lock);
	if (seg->revoked) {
		up_read(&seg->lock);
		return -ENODEV;
	}
	memcpy(info.name, seg->desc.name, sizeof(info.name));
	info.size = seg->desc.size;
	info.flags = seg->desc.flags;
	info.id = seg->desc.id;
	info.port = partlink_rd(seg->segs->pl, PARTLINK_REG_PORT_ID);
	up_read(&seg->lock);

	if (copy_to_user(uarg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static long partlink_seg_ioc_ring(struct partlink_seg *seg, void __user *uarg)
{
	struct partlink_seg_ring ring;
	struct partlink_segs *segs;
	u32 val, status;

	if (copy_from_user(&ring, uarg, sizeof(ring)))
		return -EFAULT;
	if (ring.pad)
		return -EINVAL;
	if (ring.port == PARTLINK_SEG_RING_ALL)
		val = PARTLINK_SEG_RING_ALL;
	else if (ring.port <= PARTLINK_SEG_RING_PORT_MAX)
		val = ring.port << PARTLINK_SEG_RING_PORT_SHIFT;
	else
		return -EINVAL;

	down_read(&seg->lock);
	if (seg->revoked) {
		up_read(&seg->lock);
		return -ENODEV;
	}
	segs = seg->segs;
	/*
	 * Both ends of a pipe may live in this partition: ring our own
	 * readers here, as a peer's ring would, for the device refuses to
	 * ring its own port.
	 */
	if (ring.port == segs->pl->port_id) {
		atomic64_inc(&seg->rings);
		wake_up_interruptible_poll(&seg->wait, EPOLLIN | EPOLLRDNORM);
		up_read(&seg->lock);
		return 0;
	}
	/* The status is the last ring's, whoever rang: one at a time. */
	mutex_lock(&segs->ring_lock);
	partlink_wr(segs->pl, PARTLINK_REG_SEG_RING, val | seg->slot);
	status = partlink_rd(segs->pl, PARTLINK_REG_SEG_RING_STATUS);
	mutex_unlock(&segs->ring_lock);
	up_read(&seg->lock);

	switch (status) {
	case PARTLINK_SEG_ST_OK:
		return 0;
	case PARTLINK_SEG_ST_BAD_SLOT:
		/* The table changed and the scan has not caught up yet. */
		return -ENODEV;
	case PARTLINK_SEG_ST_NOT_MEMBER:
		return -ESRCH;
	case PARTLINK_SEG_ST_PEER_DOWN:
		return -EHOSTDOWN;
	case PARTLINK_SEG_ST_BAD_VALUE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static long partlink_seg_ioctl(struct file *file, unsigned int cmd,
			       unsigned long arg)
{
	struct partlink_seg_file *pf = file->private_data;

	switch (cmd) {
	case PARTLINK_SEG_IOC_INFO:
		return partlink_seg_ioc_info(pf->seg, (void __user *)arg);
	case PARTLINK_SEG_IOC_RING:
		return partlink_seg_ioc_ring(pf->seg, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static vm_fault_t partlink_seg_fault(struct vm_fault *vmf)
{
	struct partlink_seg *seg = vmf->vma->vm_private_data;
	vm_fault_t ret = VM_FAULT_SIGBUS;

	/* See partlink_seg_kill(): check and insert are one step. */
	down_read(&seg->lock);
	if (!seg->revoked && vmf->pgoff < seg->pages)
		ret = vmf_insert_pfn(vmf->vma, vmf->address,
				     PHYS_PFN(seg->phys) + vmf->pgoff);
	up_read(&seg->lock);
	return ret;
}

/* A VMA split or copied by fork: each VMA holds a reference. */
static void partlink_seg_vm_open(struct vm_area_struct *vma)
{
	struct partlink_seg *seg = vma->vm_private_data;

	kref_get(&seg->ref);
}

static void partlink_seg_vm_close(struct vm_area_struct *vma)
{
	partlink_seg_put(vma->vm_private_data);
}

static const struct vm_operations_struct partlink_seg_vm_ops = {
	.open	= partlink_seg_vm_open,
	.close	= partlink_seg_vm_close,
	.fault	= partlink_seg_fault,
#ifdef CONFIG_HAVE_IOREMAP_PROT
	/* ptrace and gdb, through the PTEs: nothing once revoked */
	.access	= generic_access_phys,
#endif
};

static int partlink_seg_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct partlink_seg_file *pf = file->private_data;
	struct partlink_seg *seg = pf->seg;
	unsigned long pages = vma_pages(vma);

	/* Not under seg->lock: the fault checks again. */
	if (READ_ONCE(seg->revoked))
		return -ENODEV;
	/*
	 * MAP_SHARED of a read-only file clears VM_SHARED but not
	 * VM_MAYSHARE; a private mapping would copy device memory on write.
	 */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= seg->pages || pages > seg->pages - vma->vm_pgoff)
		return -EINVAL;
	if (seg->read_only || !(file->f_mode & FMODE_WRITE)) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		/* nor later through mprotect() */
		vma->vm_flags &= ~VM_MAYWRITE;
	}

	/*
	 * PFNs inserted on fault, not remap_pfn_range(), so that revocation
	 * is a zap and the next fault's SIGBUS.  vm_page_prot stays the
	 * default: vmf_insert_pfn() takes the cache mode from the memtype
	 * that probe reserved for BAR 2, write-back.
	 */
	vma->vm_flags |= VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_ops = &partlink_seg_vm_ops;
	vma->vm_private_data = seg;
	/* vm_ops->open is not called for the first VMA; close will be. */
	kref_get(&seg->ref);
	return 0;
}

static const struct file_operations partlink_seg_fops = {
	.owner		= THIS_MODULE,
	.open		= partlink_seg_open,
	.release	= partlink_seg_release,
	.read		= partlink_seg_read,
	.poll		= partlink_seg_poll,
	.mmap		= partlink_seg_mmap,
	.unlocked_ioctl	= partlink_seg_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= no_llseek,
};

void partlink_seg_get_stats(struct partlink_dev *pl, u64 *data)
{
	unsigned int i;

	for (i = 0; i < PARTLINK_SEGS_NR; i++)
		data[i] = pl->segs ? atomic64_read(&pl->segs->stats[i]) : 0;
}

/*
 * Find the segments in BAR 2, if the device has one.  Needs the MSI-X
 * vectors.  On failure the adapter works on without segments.
 */
int partlink_seg_probe(struct partlink_dev *pl)
{
	struct pci_dev *pdev = pl->pdev;
	struct device *dev = &pdev->dev;
	struct partlink_segs *segs;
	unsigned long res_flags;
	int err;

	BUILD_BUG_ON(sizeof(struct partlink_seg_entry) !=
		     PARTLINK_SEG_ENTRY_SIZE);
	BUILD_BUG_ON(PARTLINK_REG_SEG_TABLE +
		     PARTLINK_SEG_SLOTS * PARTLINK_SEG_ENTRY_SIZE >
		     PARTLINK_REG_BAR_SIZE);
	/* SEG_PENDING has a bit per slot; SEG_RING the slot below the port. */
	BUILD_BUG_ON(PARTLINK_SEG_SLOTS > 32);
	BUILD_BUG_ON(PARTLINK_SEG_SLOTS > 1u << PARTLINK_SEG_RING_PORT_SHIFT);
	BUILD_BUG_ON(PARTLINK_VEC_SEG >= PARTLINK_NR_VECTORS);

	if (!pci_resource_len(pdev, PARTLINK_SEG_BAR))
		return 0;

	res_flags = pci_resource_flags(pdev, PARTLINK_SEG_BAR);
	if (!(res_flags & IORESOURCE_MEM) || !(res_flags & IORESOURCE_PREFETCH) ||
	    !IS_ALIGNED(pci_resource_start(pdev, PARTLINK_SEG_BAR), PAGE_SIZE) ||
	    pci_resource_len(pdev, PARTLINK_SEG_BAR) < PAGE_SIZE) {
		dev_err(dev, "BAR %d is not a prefetchable, page-aligned memory BAR\n",
			PARTLINK_SEG_BAR);
		return -ENODEV;
	}

	segs = kzalloc(sizeof(*segs), GFP_KERNEL);
	if (!segs)
		return -ENOMEM;
	segs->pl = pl;
	segs->bar_start = pci_resource_start(pdev, PARTLINK_SEG_BAR);
	segs->bar_len = pci_resource_len(pdev, PARTLINK_SEG_BAR);
	segs->irq = pci_irq_vector(pdev, PARTLINK_VEC_SEG);
	snprintf(segs->irq_name, sizeof(segs->irq_name), "%s-seg",
		 PARTLINK_DRV_NAME);
	INIT_WORK(&segs->work, partlink_seg_work);
	mutex_init(&segs->lock);
	mutex_init(&segs->ring_lock);
	spin_lock_init(&segs->slots_lock);

	err = pci_request_region(pdev, PARTLINK_SEG_BAR, PARTLINK_DRV_NAME);
	if (err) {
		dev_err(dev, "cannot request BAR %d: %d\n", PARTLINK_SEG_BAR,
			err);
		goto err_free;
	}

	/*
	 * The segments are RAM on the host: user space should map them
	 * write-back, not uncached.  vmf_insert_pfn() takes the cache mode of
	 * a PFN outside System RAM from the x86 PAT memtype reserved for it,
	 * UC- if none.  A write-back mapping of the whole window reserves
	 * WB; nothing in the kernel touches it, it is only held until
	 * remove.  (If an MTRR makes the range uncached, as firmware does
	 * for the 32-bit PCI hole, PAT reserves UC- instead.)  BAR 2 must
	 * therefore not be ioremap()ed anywhere else, which would reserve
	 * UC- first.
	 */
	segs->bar_wb = memremap(segs->bar_start, segs->bar_len, MEMREMAP_WB);
	if (!segs->bar_wb) {
		dev_err(dev, "cannot map BAR %d write-back\n", PARTLINK_SEG_BAR);
		err = -ENOMEM;
		goto err_region;
	}

	err = request_irq(segs->irq, partlink_seg_irq, 0, segs->irq_name, segs);
	if (err) {
		dev_err(dev, "cannot request the segment interrupt: %d\n", err);
		goto err_unmap;
	}

	pl->segs = segs;
	/* Before the scan: a change during it raises the vector again. */
	partlink_irq_ctrl(pl, PARTLINK_IRQ_SEG, 0);

	mutex_lock(&segs->lock);
	partlink_seg_scan(segs);
	mutex_unlock(&segs->lock);
	partlink_seg_rung(segs, partlink_rd(pl, PARTLINK_REG_SEG_PENDING));

	dev_info(dev, "shared segments: window %pR, table generation %u\n",
		 &pdev->resource[PARTLINK_SEG_BAR], segs->generation);
	return 0;

err_unmap:
	memunmap(segs->bar_wb);
err_region:
	pci_release_region(pdev, PARTLINK_SEG_BAR);
err_free:
	kfree(segs);
	return err;
}

/*
 * Revoke every segment and let the window go.  Open files and mappings
 * survive as revoked objects: ENODEV and SIGBUS.
 */
void partlink_seg_remove(struct partlink_dev *pl)
{
	struct partlink_segs *segs = pl->segs;
	unsigned int slot;

	if (!segs)
		return;

	/* From here on neither the device nor partlink_seg_kick() queue work. */
	partlink_irq_ctrl(pl, 0, PARTLINK_IRQ_SEG);
	free_irq(segs->irq, segs);
	cancel_work_sync(&segs->work);

	mutex_lock(&segs->lock);
	for (slot = 0; slot < PARTLINK_SEG_SLOTS; slot++)
		if (segs->slots[slot])
			partlink_seg_revoke(segs, slot);
	mutex_unlock(&segs->lock);

	/* No PTE maps the window any more, and no fault can add one. */
	memunmap(segs->bar_wb);
	pci_release_region(pl->pdev, PARTLINK_SEG_BAR);
	pl->segs = NULL;
	mutex_destroy(&segs->ring_lock);
	mutex_destroy(&segs->lock);
	kfree(segs);
}

/* Module load: the class and the minors every adapter's segments share. */
int partlink_seg_init(void)
{
	int err;

	err = alloc_chrdev_region(&partlink_seg_devt, 0, PARTLINK_SEG_MINORS,
				  PARTLINK_SEG_CLASS);
	if (err)
		return err;

	cdev_init(&partlink_seg_cdev, &partlink_seg_fops);
	partlink_seg_cdev.owner = THIS_MODULE;
	err = cdev_add(&partlink_seg_cdev, partlink_seg_devt,
		       PARTLINK_SEG_MINORS);
	if (err)
		goto err_region;

	partlink_seg_class = class_create(THIS_MODULE, PARTLINK_SEG_CLASS);
	if (IS_ERR(partlink_seg_class)) {
		err = PTR_ERR(partlink_seg_class);
		goto err_cdev;
	}
	return 0;

err_cdev:
	cdev_del(&partlink_seg_cdev);
err_region:
	unregister_chrdev_region(partlink_seg_devt, PARTLINK_SEG_MINORS);
	return err;
}

/* Module unload, after every adapter is gone: no segment is left. */
void partlink_seg_exit(void)
{
	class_destroy(partlink_seg_class);
	cdev_del(&partlink_seg_cdev);
	unregister_chrdev_region(partlink_seg_devt, PARTLINK_SEG_MINORS);
	idr_destroy(&partlink_seg_idr);
}
