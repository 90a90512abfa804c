// SPDX-License-Identifier: GPL-2.0-only
/*
 * partlink: /dev/partlink-hv, the hypervisor mailbox for user space
 *
 * The first adapter this driver binds carries the mailbox to partlinkd
 * (docs/spec.md, section 15).  One ioctl, PARTLINK_HV_EXCHANGE, writes a
 * struct partlink_mbox_request into MBOX_REQUEST, sends it, waits for the
 * MBOX interrupt and copies struct partlink_mbox_answer back.  The driver
 * interprets neither: partlinkd checks every field.
 *
 * The mailbox works without DRIVER_OK, so it does not depend on the
 * network interface: the MBOX vector is requested at probe and kept until
 * remove.  A device reset (the interface going up or down, ethtool -G)
 * returns the mailbox to IDLE and drops a pending answer; partlink_reset()
 * tells us, so that a caller does not wait for an answer that never comes.
 *
 * Lifetime: struct partlink_hv is reference counted.  The adapter holds
 * one reference, every open file another.  Remove unregisters the misc
 * device, wakes an exchange in flight, waits for it under hv->lock and
 * clears hv->pl: the file descriptors still open answer ENODEV.
 */

#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/jiffies.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "partlink.h"

#define PARTLINK_HV_NAME	"partlink-hv"

/* Longest wait for an answer, and for a busy mailbox to become free. */
#define PARTLINK_HV_TIMEOUT_MS	(PARTLINK_MBOX_TIMEOUT_MS + 1000)
/*
 * The MBOX interrupt ends a wait; the status register is read again at
 * least this often anyway, so a lost interrupt costs at most this long.
 */
#define PARTLINK_HV_POLL_MS	200

#define PARTLINK_HV_REQ_WORDS	(PARTLINK_MBOX_REQUEST_SIZE / 4)
#define PARTLINK_HV_ANS_WORDS	(PARTLINK_MBOX_ANSWER_SIZE / 4)

struct partlink_hv {
	struct miscdevice misc;
	struct kref ref;
	struct mutex lock;	/* one exchange at a time; guards pl */
	struct partlink_dev *pl;	/* NULL once the adapter is gone */
	struct completion done;	/* MBOX interrupt, reset or removal */
	atomic_t resets;	/* device resets seen, see partlink_hv_reset */
	bool gone;		/* remove has begun */
	int irq;
	char irq_name[IFNAMSIZ + 8];
};

/* The adapter that owns /dev/partlink-hv; guarded by partlink_hv_owner_lock */
static struct partlink_hv *partlink_hv_owner;
static DEFINE_MUTEX(partlink_hv_owner_lock);

static void partlink_hv_free(struct kref *ref)
{
	kfree(container_of(ref, struct partlink_hv, ref));
}

static irqreturn_t partlink_hv_irq(int irq, void *data)
{
	struct partlink_hv *hv = data;

	complete(&hv->done);
	return IRQ_HANDLED;
}

/*
 * Called by partlink_reset(): the device dropped any pending answer and
 * the request registers.  Wake the exchange in flight so that it finds out.
 */
void partlink_hv_reset(struct partlink_hv *hv)
{
	atomic_inc(&hv->resets);
	complete(&hv->done);
}

/*
 * Wait until MBOX_STATUS is not BUSY, until @deadline (jiffies).  The
 * MBOX interrupt, a reset or removal end a wait early.  Returns the
 * status, or -EINTR, -ENODEV or -ETIMEDOUT.
 */
static int partlink_hv_wait(struct partlink_hv *hv, unsigned long deadline)
{
	struct partlink_dev *pl = hv->pl;
	long left, ret;
	u32 status;

	for (;;) {
		/* Re-armed before the read: an interrupt after it is kept. */
		reinit_completion(&hv->done);
		smp_mb();	/* reinit before the reads, see partlink_hv_reset */
		if (READ_ONCE(hv->gone))
			return -ENODEV;
		status = partlink_rd(pl, PARTLINK_REG_MBOX_STATUS);
		if (status != PARTLINK_MBOX_BUSY)
			return status;

		left = (long)(deadline - jiffies);
		if (left <= 0)
			return -ETIMEDOUT;
		left = min_t(long, left, msecs_to_jiffies(PARTLINK_HV_POLL_MS));
		ret = wait_for_completion_interruptible_timeout(&hv->done, left);
		if (ret < 0)
			return -EINTR;
	}
}

/* Write the request with 32-bit stores, in the device's byte order. */
static void partlink_hv_write_request(struct partlink_dev *pl,
				      const struct partlink_mbox_request *req)
{
	__le32 words[PARTLINK_HV_REQ_WORDS];
	unsigned int i;

	memcpy(words, req, sizeof(words));
	for (i = 0; i < PARTLINK_HV_REQ_WORDS; i++)
		iowrite32(le32_to_cpu(words[i]),
			  pl->regs + PARTLINK_REG_MBOX_REQUEST + 4 * i);
}

static void partlink_hv_read_answer(struct partlink_dev *pl,
				    struct partlink_mbox_answer *ans)
{
	__le32 words[PARTLINK_HV_ANS_WORDS];
	unsigned int i;

	for (i = 0; i < PARTLINK_HV_ANS_WORDS; i++)
		words[i] = cpu_to_le32(ioread32(pl->regs +
						PARTLINK_REG_MBOX_ANSWER + 4 * i));
	memcpy(ans, words, sizeof(words));
}

/* Send @x->request and fill @x->answer.  Called with hv->lock held. */
static int partlink_hv_exchange(struct partlink_hv *hv,
				struct partlink_hv_exchange *x)
{
	unsigned long timeout = msecs_to_jiffies(PARTLINK_HV_TIMEOUT_MS);
	unsigned long deadline = jiffies + timeout;
	struct partlink_dev *pl = hv->pl;
	int resets, status;
	bool sent;

	if (!pl)
		return -ENODEV;

	/*
	 * An earlier caller that gave up (a signal) may have left a request
	 * in flight: the device answers it within PARTLINK_MBOX_TIMEOUT_MS.
	 */
	for (;;) {
		resets = atomic_read(&hv->resets);
		status = partlink_hv_wait(hv, deadline);
		if (status < 0)
			return status;

		partlink_hv_write_request(pl, &x->request);
		reinit_completion(&hv->done);
		/*
		 * A reset zeroes the request registers.  Under reset_lock no
		 * reset can come between this check and MBOX_SEND: either the
		 * whole request goes, or a reset came first and nothing was
		 * sent, and we write it again.
		 */
		spin_lock(&pl->reset_lock);
		sent = atomic_read(&hv->resets) == resets;
		if (sent)
			partlink_wr(pl, PARTLINK_REG_MBOX_SEND, PARTLINK_MBOX_SEND);
		spin_unlock(&pl->reset_lock);
		if (sent)
			break;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
	}

	deadline = jiffies + timeout;

	status = partlink_hv_wait(hv, deadline);
	if (status < 0)
		return status;
	/* IDLE, or a reset since: the device dropped the answer. */
	if (status != PARTLINK_MBOX_DONE || atomic_read(&hv->resets) != resets)
		return -ETIMEDOUT;

	partlink_hv_read_answer(pl, &x->answer);
	/*
	 * A reset during the read zeroed the answer under us; MMIO reads are
	 * ordered, so DONE now means every word read was the answer.
	 */
	if (partlink_rd(pl, PARTLINK_REG_MBOX_STATUS) != PARTLINK_MBOX_DONE)
		return -ETIMEDOUT;
	return 0;
}

static long partlink_hv_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	struct partlink_hv *hv = file->private_data;
	struct partlink_hv_exchange __user *ux = (void __user *)arg;
	struct partlink_hv_exchange x = { };
	int err;

	if (cmd != PARTLINK_HV_EXCHANGE)
		return -ENOTTY;

	if (copy_from_user(&x.request, &ux->request, sizeof(x.request)))
		return -EFAULT;

	if (mutex_lock_interruptible(&hv->lock))
		return -EINTR;
	err = partlink_hv_exchange(hv, &x);
	mutex_unlock(&hv->lock);
	if (err)
		return err;

	if (copy_to_user(&ux->answer, &x.answer, sizeof(x.answer)))
		return -EFAULT;
	return 0;
}

/* Called under misc_mtx, which misc_deregister() takes too. */
static int partlink_hv_open(struct inode *inode, struct file *file)
{
	struct partlink_hv *hv = container_of(file->private_data,
					      struct partlink_hv, misc);

	kref_get(&hv->ref);
	file->private_data = hv;
	return nonseekable_open(inode, file);
}

static int partlink_hv_release(struct inode *inode, struct file *file)
{
	struct partlink_hv *hv = file->private_data;

	kref_put(&hv->ref, partlink_hv_free);
	return 0;
}

static const struct file_operations partlink_hv_fops = {
	.owner		= THIS_MODULE,
	.open		= partlink_hv_open,
	.release	= partlink_hv_release,
	.unlocked_ioctl	= partlink_hv_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= no_llseek,
};

/*
 * Register /dev/partlink-hv for @pl if no other adapter has it.  Needs the
 * MSI-X vectors.  Returns 0 also when another adapter owns the device.
 */
int partlink_hv_probe(struct partlink_dev *pl)
{
	struct device *dev = &pl->pdev->dev;
	struct partlink_hv *hv;
	int err;

	BUILD_BUG_ON(sizeof(struct partlink_mbox_request) !=
		     PARTLINK_MBOX_REQUEST_SIZE);
	BUILD_BUG_ON(sizeof(struct partlink_mbox_answer) !=
		     PARTLINK_MBOX_ANSWER_SIZE);
	BUILD_BUG_ON(sizeof(struct partlink_hv_exchange) !=
		     PARTLINK_MBOX_REQUEST_SIZE + PARTLINK_MBOX_ANSWER_SIZE);
	BUILD_BUG_ON(PARTLINK_REG_MBOX_REQUEST + PARTLINK_MBOX_REQUEST_SIZE >
		     PARTLINK_REG_MBOX_ANSWER);
	BUILD_BUG_ON(PARTLINK_REG_MBOX_ANSWER + PARTLINK_MBOX_ANSWER_SIZE >
		     PARTLINK_REG_MBOX_SEND);

	mutex_lock(&partlink_hv_owner_lock);
	if (partlink_hv_owner) {
		err = 0;
		goto out_unlock;
	}

	hv = kzalloc(sizeof(*hv), GFP_KERNEL);
	if (!hv) {
		err = -ENOMEM;
		goto out_unlock;
	}
	kref_init(&hv->ref);
	mutex_init(&hv->lock);
	init_completion(&hv->done);
	atomic_set(&hv->resets, 0);
	hv->pl = pl;
	hv->irq = pci_irq_vector(pl->pdev, PARTLINK_VEC_MBOX);
	snprintf(hv->irq_name, sizeof(hv->irq_name), "%s-mbox",
		 PARTLINK_DRV_NAME);

	err = request_irq(hv->irq, partlink_hv_irq, 0, hv->irq_name, hv);
	if (err) {
		dev_err(dev, "cannot request the mailbox interrupt: %d\n", err);
		goto err_free;
	}

	/* Before the misc device: a reset from now on wakes its callers. */
	pl->hv = hv;

	hv->misc.minor = MISC_DYNAMIC_MINOR;
	hv->misc.name = PARTLINK_HV_NAME;
	hv->misc.fops = &partlink_hv_fops;
	hv->misc.mode = 0600;
	hv->misc.parent = dev;
	err = misc_register(&hv->misc);
	if (err) {
		dev_err(dev, "cannot register /dev/%s: %d\n", PARTLINK_HV_NAME,
			err);
		goto err_irq;
	}

	partlink_hv_owner = hv;
	dev_info(dev, "hypervisor mailbox at /dev/%s\n", PARTLINK_HV_NAME);
	mutex_unlock(&partlink_hv_owner_lock);
	return 0;

err_irq:
	pl->hv = NULL;
	free_irq(hv->irq, hv);
err_free:
	kfree(hv);
out_unlock:
	mutex_unlock(&partlink_hv_owner_lock);
	return err;
}

/*
 * Undo partlink_hv_probe() for @pl, if it owns the mailbox.  Waits for an
 * exchange in flight, which ends with ENODEV; open files stay valid and
 * answer ENODEV from now on.
 */
void partlink_hv_remove(struct partlink_dev *pl)
{
	struct partlink_hv *hv = pl->hv;

	if (!hv)
		return;

	/* No new opens once this returns. */
	misc_deregister(&hv->misc);

	WRITE_ONCE(hv->gone, true);
	complete(&hv->done);
	mutex_lock(&hv->lock);
	hv->pl = NULL;
	mutex_unlock(&hv->lock);

	free_irq(hv->irq, hv);
	pl->hv = NULL;

	mutex_lock(&partlink_hv_owner_lock);
	partlink_hv_owner = NULL;
	mutex_unlock(&partlink_hv_owner_lock);

	kref_put(&hv->ref, partlink_hv_free);
}
