/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * partlink device ABI: the contract between the partlink-pci device model,
 * the guest driver, partlinkd and the tests.  docs/spec.md describes every
 * field; change both together, and bump PARTLINK_ABI_VERSION on any
 * incompatible change.
 *
 * Three parts:
 *  1. what a guest sees: PCI identity, BAR 0 registers, ring descriptors;
 *  2. the fabric segment: shared memory between the devices of all
 *     partitions and partlinkd (host only);
 *  3. the fabric protocol: messages between a device and partlinkd over a
 *     unix socket (host only).
 *
 * Guest-visible fields are little-endian.  Host-only fields (parts 2 and 3)
 * are in the host's byte order: both ends always run on the same host.
 */
#ifndef PARTLINK_ABI_H
#define PARTLINK_ABI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * PCI identity.  0x1234 is the vendor ID QEMU uses for its own experimental
 * devices (edu, bochs-display); the device ID is ours.
 */
#define PARTLINK_PCI_VENDOR_ID		0x1234
#define PARTLINK_PCI_DEVICE_ID		0x7071
#define PARTLINK_PCI_REVISION		0x04
#define PARTLINK_PCI_CLASS		0x0200	/* network, Ethernet */

#define PARTLINK_ABI_VERSION		4

/* BAR 0: registers.  BAR 1: the MSI-X table and PBA. */
#define PARTLINK_REG_BAR		0
#define PARTLINK_REG_BAR_SIZE		0x1000
#define PARTLINK_MSIX_BAR		1

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
#define PARTLINK_REG_TX_RING_LO		0x040	/* RW: TX ring address 31..0 */
#define PARTLINK_REG_TX_RING_HI		0x044	/* RW: TX ring address 63..32 */
#define PARTLINK_REG_TX_RING_SIZE	0x048	/* RW: TX ring entries */
#define PARTLINK_REG_RX_RING_LO		0x050	/* RW: RX ring address 31..0 */
#define PARTLINK_REG_RX_RING_HI		0x054	/* RW: RX ring address 63..32 */
#define PARTLINK_REG_RX_RING_SIZE	0x058	/* RW: RX ring entries */
#define PARTLINK_REG_TX_KICK		0x060	/* WO: doorbell, see NOTIFY */
#define PARTLINK_REG_IRQ_CTRL		0x068	/* RW: PARTLINK_IRQ_* */
#define PARTLINK_REG_LINK		0x06c	/* RO: PARTLINK_LINK_* */
#define PARTLINK_REG_MAX_PACKET		0x070	/* RO: largest frame, bytes */
#define PARTLINK_REG_NOTIFY_LO		0x074	/* RW: notify area 31..0 */
#define PARTLINK_REG_NOTIFY_HI		0x078	/* RW: notify area 63..32 */
#define PARTLINK_REG_COUNTERS		0x100	/* RO: 64-bit counters */
#define PARTLINK_REG_MBOX_REQUEST	0x200	/* RW: struct partlink_mbox_request */
#define PARTLINK_REG_MBOX_ANSWER	0x280	/* RO: struct partlink_mbox_answer */
#define PARTLINK_REG_MBOX_SEND		0x2f0	/* WO: PARTLINK_MBOX_SEND */
#define PARTLINK_REG_MBOX_STATUS	0x2f4	/* RO: PARTLINK_MBOX_* state */

/* "PLNK" read as a little-endian 32-bit value */
#define PARTLINK_MAGIC			0x4b4e4c50

/*
 * Device status, written by the driver in this order, read back to check
 * that the device accepted it.  Writing 0 resets the device.
 */
#define PARTLINK_STATUS_ACKNOWLEDGE	(1u << 0)	/* driver found it */
#define PARTLINK_STATUS_DRIVER_OK	(1u << 1)	/* driver is ready */
/*
 * Read-only, set by the device after STATUS = 0 while a peer still holds
 * this port's RX lock (stopped in the middle of a copy into our buffers):
 * the ring is closed to new senders, but the driver must not free its
 * buffers until the bit clears.
 */
#define PARTLINK_STATUS_RESETTING	(1u << 6)
#define PARTLINK_STATUS_FAILED		(1u << 7)	/* refused or gave up */
#define PARTLINK_STATUS_MASK		(PARTLINK_STATUS_ACKNOWLEDGE | \
					 PARTLINK_STATUS_DRIVER_OK | \
					 PARTLINK_STATUS_FAILED)

/*
 * Feature bits.  CSUM: descriptors may carry NEEDS_CSUM and DATA_VALID.
 * GSO: descriptors may carry segmentation metadata; requires CSUM.  A
 * packet with offload metadata is delivered only to peers whose driver
 * accepted the same features; to others it is dropped as NO_OFFLOAD.
 */
#define PARTLINK_F_CSUM			(1u << 0)
#define PARTLINK_F_GSO			(1u << 1)
#define PARTLINK_FEATURES		(PARTLINK_F_CSUM | PARTLINK_F_GSO)

/*
 * IRQ_CTRL enables vectors; it is a mask, not a re-arm.  Each DATA
 * interrupt is armed through struct partlink_notify.irq_armed instead,
 * so that re-arming after a poll costs the driver no register write.
 */
#define PARTLINK_IRQ_DATA		(1u << 0)
#define PARTLINK_IRQ_LINK		(1u << 1)
#define PARTLINK_IRQ_SEG		(1u << 2)

/* LINK: bit 0 registered on the fabric; bits 31..16 reachable peers */
#define PARTLINK_LINK_UP		(1u << 0)
#define PARTLINK_LINK_PEERS_SHIFT	16

/* MSI-X vectors */
#define PARTLINK_VEC_DATA		0	/* packets arrived, TX handed back */
#define PARTLINK_VEC_LINK		1
#define PARTLINK_VEC_MBOX		2	/* an answer is in MBOX_ANSWER */
#define PARTLINK_VEC_SEG		3	/* segment table changed or rung */
#define PARTLINK_NR_VECTORS		4

/*
 * The hypervisor mailbox: one request at a time from the guest to
 * partlinkd, for workload management.  The driver writes a request into
 * MBOX_REQUEST (32-bit stores), PARTLINK_MBOX_SEND into MBOX_SEND, and
 * waits until MBOX_STATUS reads DONE (the MBOX vector fires then); the
 * answer is in MBOX_ANSWER.  The device forwards the request's bytes as
 * they are: partlinkd validates every field and knows the sender from
 * the port the device registered, never from the request.
 */
#define PARTLINK_MBOX_SEND		1

/* partition names, here and in the fabric: NUL-padded, not terminated */
#define PARTLINK_NAME_LEN		16

/* MBOX_STATUS */
#define PARTLINK_MBOX_IDLE		0	/* nothing sent since reset */
#define PARTLINK_MBOX_BUSY		1	/* request sent, no answer yet */
#define PARTLINK_MBOX_DONE		2	/* MBOX_ANSWER holds the answer */

/* The device answers UNAVAILABLE itself when partlinkd is silent this long */
#define PARTLINK_MBOX_TIMEOUT_MS	5000

/* Request operations */
#define PARTLINK_MBOX_OP_SET_CPU	1	/* target's CPU cap := value */
#define PARTLINK_MBOX_OP_SET_MEMORY	2	/* target's balloon := value */
#define PARTLINK_MBOX_OP_REPORT		3	/* the manager's chart of target */

/* value of SET_CPU, and the chart fields of REPORT, are in millionths */
#define PARTLINK_MBOX_MICRO		1000000
/* a REPORT field the manager has no value for */
#define PARTLINK_MBOX_UNDEFINED		((__s64)(-0x7fffffffffffffffLL - 1))

/* REPORT chart_state */
#define PARTLINK_CHART_WARMING_UP	0
#define PARTLINK_CHART_IN_CONTROL	1
#define PARTLINK_CHART_LOW		2	/* velocity below its trend */
#define PARTLINK_CHART_HIGH		3	/* velocity above its trend */

struct partlink_mbox_request {
	__le32 op;		/* PARTLINK_MBOX_OP_* */
	__le32 flags;		/* must be zero */
	char target[PARTLINK_NAME_LEN];	/* partition, NUL-padded */
	/* SET_CPU: the donor to take from; empty: the others share it */
	char donor[PARTLINK_NAME_LEN];
	__le64 value;		/* signed: SET_CPU micro-CPUs, SET_MEMORY MiB */
	/* REPORT only, signed millionths; PARTLINK_MBOX_UNDEFINED if none */
	__le64 velocity;	/* S, the slope of T(C) */
	__le64 trend;		/* S's trend */
	__le64 ewma;		/* the chart's EWMA of S - trend */
	__le64 lower_limit;	/* its control limits */
	__le64 upper_limit;
	__le64 cpu;		/* the partition's CPU busy fraction C */
	__le32 chart_state;	/* PARTLINK_CHART_* */
	__le32 reserved;	/* must be zero */
	__u8 pad[24];		/* must be zero */
};

#define PARTLINK_MBOX_REQUEST_SIZE	128

/* Answer results */
#define PARTLINK_MBOX_APPLIED		0	/* done as asked */
#define PARTLINK_MBOX_CLAMPED		1	/* done, to the nearest allowed */
#define PARTLINK_MBOX_REFUSED		2	/* not allowed or malformed */
#define PARTLINK_MBOX_FAILED		3	/* allowed, could not be applied */
#define PARTLINK_MBOX_UNAVAILABLE	4	/* no hypervisor answered */

struct partlink_mbox_answer {
	__le32 result;		/* PARTLINK_MBOX_APPLIED .. UNAVAILABLE */
	__le32 reserved;
	__le64 value;		/* signed: the target's setting now, as in value */
	char reason[96];	/* NUL-terminated, for people */
};

#define PARTLINK_MBOX_ANSWER_SIZE	112

/*
 * /dev/partlink-hv: the driver's mailbox for user space.  One ioctl
 * sends a request and waits for the answer.
 */
struct partlink_hv_exchange {
	struct partlink_mbox_request request;	/* in */
	struct partlink_mbox_answer answer;	/* out */
};

#define PARTLINK_HV_IOC_MAGIC		'P'
#define PARTLINK_HV_EXCHANGE		_IOWR(PARTLINK_HV_IOC_MAGIC, 1, \
					      struct partlink_hv_exchange)

/*
 * Shared segments: memory the operator's table (segments.json) lets
 * several partitions map.  BAR 2 (64-bit, prefetchable) is a window in
 * which the device places each segment this partition may use; the table
 * at SEG_TABLE in BAR 0 says where, with the owner, group, mode and flags
 * the guest's device file gets.  The table is read-only to the guest and
 * changes only when the operator loads a new one: SEG_GENERATION counts
 * changes, and the SEG vector fires after each.  An entry whose PRESENT
 * flag is clear is free; a removed segment's range of the window reads
 * as all ones and ignores writes from then on.
 *
 * Doorbells: writing slot | port << 8 (or slot | SEG_RING_ALL) to
 * SEG_RING rings the partitions that share the segment in that slot:
 * port, or every other partition that maps it.  SEG_RING_STATUS then
 * reads PARTLINK_SEG_ST_*.  A ring raises the SEG vector in the target
 * and sets the bit of the target's slot for that segment in its
 * SEG_PENDING, which reading clears.
 *
 * The driver writes SEG_ACK with the generation whose table it has
 * applied, removed segments unmapped: until then the device gives a
 * removed segment's slot and window range to no other segment, so that a
 * stale mapping or ring never reaches another segment's memory.
 */
#define PARTLINK_SEG_BAR		2
#define PARTLINK_REG_SEG_SLOTS		0x300	/* RO: table entries */
#define PARTLINK_REG_SEG_GENERATION	0x304	/* RO: table changes */
#define PARTLINK_REG_SEG_PENDING	0x308	/* RC: slots rung, bit per slot */
#define PARTLINK_REG_SEG_RING		0x30c	/* WO: slot | port << 8 */
#define PARTLINK_REG_SEG_RING_STATUS	0x310	/* RO: PARTLINK_SEG_ST_* */
#define PARTLINK_REG_SEG_ERRORS		0x314	/* RO: refused rings */
#define PARTLINK_REG_SEG_ACK		0x318	/* WO: generation applied */
#define PARTLINK_REG_SEG_TABLE		0x800	/* RO: struct partlink_seg_entry[] */

#define PARTLINK_SEG_SLOTS		32
#define PARTLINK_SEG_SIZE_MAX		(1ull << 30)	/* bytes, per segment */
#define PARTLINK_SEG_NAME_LEN		32	/* NUL-terminated */
#define PARTLINK_SEG_RING_PORT_SHIFT	8
#define PARTLINK_SEG_RING_ALL		(1u << 31)

/* SEG_RING_STATUS */
#define PARTLINK_SEG_ST_OK		0	/* rung */
#define PARTLINK_SEG_ST_BAD_SLOT	1	/* no segment in that slot */
#define PARTLINK_SEG_ST_NOT_MEMBER	2	/* port does not share it */
#define PARTLINK_SEG_ST_PEER_DOWN	3	/* port shares it, not running */
#define PARTLINK_SEG_ST_BAD_VALUE	4	/* reserved bits set */

/* Entry flags */
#define PARTLINK_SEG_PRESENT		(1u << 0)
#define PARTLINK_SEG_READ_ONLY		(1u << 1)	/* host maps it read-only */
#define PARTLINK_SEG_PINNED		(1u << 2)	/* locked in host memory */

/* One table entry, 64 bytes, in BAR 0 at SEG_TABLE + slot * 64 */
struct partlink_seg_entry {
	char name[PARTLINK_SEG_NAME_LEN];
	__le64 offset;		/* in BAR 2, page-aligned */
	__le64 size;		/* bytes, a multiple of 4096 */
	__le32 uid;		/* owner, group and mode of the device file */
	__le32 gid;
	__le16 mode;		/* permission bits, 0 .. 0777 */
	__le16 flags;		/* PARTLINK_SEG_* */
	__le32 id;		/* the segment's number on the whole fabric */
};

#define PARTLINK_SEG_ENTRY_SIZE		64

/*
 * The guest's device files, /dev/partlink/seg/<name>: mmap (shared,
 * offset and length within the segment) maps the segment; read() of 8
 * bytes waits for a doorbell and returns the number of rings seen so far
 * (a __u64), poll() says POLLIN when there is one the file has not read;
 * RING rings a port or all.  After the operator removes the segment, a
 * mapping's next access raises SIGBUS and every call on the file fails
 * with ENODEV.
 */
struct partlink_seg_info {
	char name[PARTLINK_SEG_NAME_LEN];
	__u64 size;
	__u32 flags;		/* PARTLINK_SEG_* */
	__u32 id;
	__u32 port;		/* this partition's port */
	__u32 pad;
};

struct partlink_seg_ring {
	__u32 port;		/* a port, or PARTLINK_SEG_RING_ALL */
	__u32 pad;
};

#define PARTLINK_SEG_IOC_INFO		_IOR(PARTLINK_HV_IOC_MAGIC, 2, \
					     struct partlink_seg_info)
#define PARTLINK_SEG_IOC_RING		_IOW(PARTLINK_HV_IOC_MAGIC, 3, \
					     struct partlink_seg_ring)

/* Rings */
#define PARTLINK_RING_MIN		16
#define PARTLINK_RING_MAX		4096
#define PARTLINK_RING_ALIGN		64
#define PARTLINK_MAX_PACKET		65536	/* frame incl. Ethernet header */
#define PARTLINK_MIN_PACKET		14
#define PARTLINK_MAX_SEGS		32	/* entries per packet, TX or RX */
#define PARTLINK_RX_BUF_MIN		256
#define PARTLINK_RAM_FLOOR		0x100000 /* buffers live above 1 MiB */

/*
 * The notify area: 256 bytes of guest RAM, 64-byte aligned, whose address
 * the driver writes to NOTIFY_LO/HI before DRIVER_OK.  It replaces a
 * register access per packet with plain memory accesses, as virtio's
 * event index does; every field sits on a cache line of its own, written
 * by one side.  All are 32-bit, little-endian; indices run freely and
 * wrap at 2^32, counting ring entries since DRIVER_OK.
 *
 * tx_kick: the device sets it to 1 before its TX thread sleeps and to 0
 * when it wakes.  After handing entries over, the driver rings TX_KICK
 * only if it reads 1 (after a full barrier).  The device sets the flag,
 * then looks at the ring once more, so one of the two always sees the
 * other.
 *
 * tx_done: the entries the device has handed back so far.
 *
 * tx_event: the driver wants the DATA vector once the device hands back
 * entry number tx_event, as VRING_AVAIL_EVENT: the device raises it when
 * a batch takes tx_done from old to new with
 * (u32)(new - tx_event - 1) < (u32)(new - old).
 *
 * irq_armed: the driver writes 1 when it wants the next DATA interrupt
 * (after its poll ends).  Whoever raises the vector, this device for TX
 * or a peer's device that delivered packets here, first exchanges it
 * with 0: one interrupt per arming, however many packets.
 */
#define PARTLINK_NOTIFY_SIZE		256
#define PARTLINK_NOTIFY_TX_KICK		0x00	/* device writes */
#define PARTLINK_NOTIFY_TX_DONE		0x04	/* device writes */
#define PARTLINK_NOTIFY_TX_EVENT	0x40	/* driver writes */
#define PARTLINK_NOTIFY_IRQ_ARMED	0x80	/* driver sets, raiser clears */

struct partlink_notify {
	__le32 tx_kick;
	__le32 tx_done;
	__u8 pad0[56];
	__le32 tx_event;
	__u8 pad1[60];
	__le32 irq_armed;
	__u8 pad2[60];
	__u8 reserved[64];
};

/*
 * Work the device does per round of its TX thread, at most; the rest
 * waits for the next round, so that no guest holds the thread for long.
 */
#define PARTLINK_TX_BUDGET_ENTRIES	256
#define PARTLINK_TX_BUDGET_BYTES	(1u << 20)
/* Bad RX entries a sender skips per packet before dropping it */
#define PARTLINK_RX_SKIP_MAX		8

/*
 * A ring entry, the same for TX and RX.  The driver fills an entry and
 * sets OWN last; the device reads the entry once, uses its private copy,
 * and hands it back by writing len, status and the offload fields and
 * clearing OWN last.
 */
struct partlink_desc {
	__le64 addr;		/* guest-physical buffer address */
	__le32 len;		/* TX: bytes; RX: buffer size, then bytes */
	__le16 flags;		/* PARTLINK_DESC_* */
	__le16 status;		/* PARTLINK_ST_*, written by the device */
	__le16 csum_start;	/* as in struct virtio_net_hdr */
	__le16 csum_offset;
	__le16 gso_size;
	__u8 gso_type;		/* PARTLINK_GSO_* */
	__u8 hdr_len;
	__le32 reserved;	/* must be zero */
	__le32 cookie;		/* the driver's, never touched */
};

#define PARTLINK_DESC_SIZE		32

#define PARTLINK_DESC_MORE		(1u << 0)	/* packet continues */
#define PARTLINK_DESC_NEEDS_CSUM	(1u << 1)	/* csum_start/offset */
#define PARTLINK_DESC_DATA_VALID	(1u << 2)	/* checksum verified */
#define PARTLINK_DESC_OWN		(1u << 15)	/* device owns it */
#define PARTLINK_DESC_TX_FLAGS		(PARTLINK_DESC_MORE | \
					 PARTLINK_DESC_NEEDS_CSUM | \
					 PARTLINK_DESC_DATA_VALID | \
					 PARTLINK_DESC_OWN)

/* gso_type: the values of virtio_net_hdr */
#define PARTLINK_GSO_NONE		0
#define PARTLINK_GSO_TCPV4		1
#define PARTLINK_GSO_UDP		3
#define PARTLINK_GSO_TCPV6		4
#define PARTLINK_GSO_UDP_L4		5
#define PARTLINK_GSO_ECN		0x80

/* Descriptor status, written back by the device */
#define PARTLINK_ST_OK			0
#define PARTLINK_ST_BAD_ADDR		1	/* outside guest RAM */
#define PARTLINK_ST_BAD_LEN		2	/* zero, too long, too short */
#define PARTLINK_ST_BAD_DESC		3	/* reserved bits, chain, offload */
#define PARTLINK_ST_SPOOFED		4	/* source MAC is not ours */
#define PARTLINK_ST_NO_ROUTE		5	/* no reachable destination */
#define PARTLINK_ST_NO_BUFFER		6	/* destination ring empty */
#define PARTLINK_ST_NO_OFFLOAD		7	/* destination lacks feature */
#define PARTLINK_ST_LINK_DOWN		8	/* not on the fabric */

/* Counters: 64-bit, at PARTLINK_REG_COUNTERS + 8 * index, low word first */
#define PARTLINK_CTR_TX_PACKETS		0	/* packets sent to >= 1 peer */
#define PARTLINK_CTR_TX_BYTES		1
#define PARTLINK_CTR_RX_PACKETS		2	/* packets delivered here */
#define PARTLINK_CTR_RX_BYTES		3
#define PARTLINK_CTR_COPIES		4	/* packet copies this device made */
#define PARTLINK_CTR_BYTES_COPIED	5
#define PARTLINK_CTR_RX_NO_BUFFER	6	/* dropped here: ring empty */
#define PARTLINK_CTR_TX_NO_BUFFER	7	/* dropped: peer's ring empty */
#define PARTLINK_CTR_BAD_DESCRIPTORS	8	/* packets or entries refused */
#define PARTLINK_CTR_SPOOFED		9
#define PARTLINK_CTR_NO_ROUTE		10
#define PARTLINK_CTR_TX_KICKS		11	/* doorbells the device took */
#define PARTLINK_CTR_RX_INTERRUPTS	12	/* DATA vectors raised */
#define PARTLINK_CTR_LINK_CHANGES	13
#define PARTLINK_CTR_TX_ERRORS		14	/* every TX status but OK */
#define PARTLINK_CTR_RX_BAD_BUFFER	15	/* peer refused our RX entry */
#define PARTLINK_NR_COUNTERS		16

/*
 * Part 2: the fabric segment, a file partlinkd creates and every device
 * maps.  It outlives partlinkd, so that a restarted daemon finds the
 * fabric as it was and the data path never stops.
 */
#define PARTLINK_FABRIC_MAGIC		0x42464c50	/* "PLFB" */
#define PARTLINK_FABRIC_VERSION		2
#define PARTLINK_FABRIC_PORTS		64
#define PARTLINK_LOCK_SIZE		64

/* Port state in the fabric segment */
#define PARTLINK_PORT_FREE		0
#define PARTLINK_PORT_UP		1	/* registered, mappable */

/* Port flags */
#define PARTLINK_PORT_WLM		(1u << 0)	/* may send directives */

/*
 * One port, five cache lines: fields written by different parties do not
 * share a line.  rx_lock is a process-shared, robust pthread mutex that
 * partlinkd initializes; it guards the rx_* fields and the owner's RX
 * ring.  Senders take it to fill the owner's RX ring; the owner's device
 * takes it to change rx_ready.  state, epoch, network, flags, mac and
 * name are written by partlinkd only, also under rx_lock.
 */
struct partlink_fabric_port {
	__u8 rx_lock[PARTLINK_LOCK_SIZE];
	/* line 1: identity (partlinkd) and the RX ring (the owner's device) */
	__u32 state;		/* PARTLINK_PORT_* */
	__u32 epoch;		/* changes at every new registration */
	__u32 network;		/* ports reach each other within one network */
	__u32 flags;		/* PARTLINK_PORT_* flags */
	__s32 pid;		/* the device's QEMU */
	__u8 mac[6];
	__u8 pad0[2];
	char name[PARTLINK_NAME_LEN];
	__u32 rx_ready;		/* the RX ring below may be filled */
	__u32 rx_features;	/* features the owner's driver accepted */
	__u32 rx_ring_size;
	__u64 rx_ring_gpa;
	/* line 2: the owner's struct partlink_notify, guest-physical */
	__u64 notify_gpa;
	__u8 pad1[56];
	/* line 3: written by senders under rx_lock */
	__u32 rx_head;		/* next entry a sender fills */
	/*
	 * Entries from rx_head a sender is handing back; zero whenever the
	 * lock is free, so non-zero at lock time means the holder died in
	 * the middle and the next holder repairs those entries.
	 */
	__u32 rx_claimed;
	/*
	 * Segment doorbells for the owner, a bit per segment id, set
	 * atomically by the ringing device before it writes the owner's
	 * doorbell eventfd, exchanged with 0 by the owner's device.
	 */
	__u64 seg_rung;
	__u8 pad2[48];
	/* lines 4 and 5 */
	__u64 counters[PARTLINK_NR_COUNTERS];	/* updated atomically */
	__u8 pad3[512 - 256 - 8 * PARTLINK_NR_COUNTERS];
};

struct partlink_fabric {
	__u32 magic;		/* PARTLINK_FABRIC_MAGIC */
	__u32 version;		/* PARTLINK_FABRIC_VERSION */
	__u32 nr_ports;		/* PARTLINK_FABRIC_PORTS */
	__u32 pad[13];
	struct partlink_fabric_port ports[PARTLINK_FABRIC_PORTS];
};

/*
 * Part 3: the fabric protocol.  Every message is a struct partlink_msg
 * header followed by len bytes of payload; file descriptors travel as
 * SCM_RIGHTS with the message's first byte.
 */
#define PARTLINK_MSG_HELLO		1	/* device -> daemon */
#define PARTLINK_MSG_WELCOME		2	/* daemon -> device */
#define PARTLINK_MSG_REFUSE		3	/* daemon -> device, then close */
#define PARTLINK_MSG_PEER_UP		4	/* daemon -> device */
#define PARTLINK_MSG_PEER_DOWN		5	/* daemon -> device */
#define PARTLINK_MSG_MBOX_REQUEST	6	/* device -> daemon */
#define PARTLINK_MSG_MBOX_ANSWER	7	/* daemon -> device */
#define PARTLINK_MSG_SEGMENT		8	/* daemon -> device */
#define PARTLINK_MSG_SEGMENT_GONE	9	/* daemon -> device */
#define PARTLINK_MSG_SEG_PEER		10	/* daemon -> device */

#define PARTLINK_MSG_MAX_LEN		4096
#define PARTLINK_MAX_REGIONS		8
#define PARTLINK_MAX_FDS		(PARTLINK_MAX_REGIONS + 1)

struct partlink_msg {
	__u32 type;		/* PARTLINK_MSG_* */
	__u32 len;		/* payload bytes after this header */
};

/*
 * A range of guest RAM: guest-physical [gpa, gpa + size) is bytes
 * [offset, offset + size) of the file descriptor number fd_index among
 * the fds of the message, where fd 0 is the doorbell.
 */
struct partlink_ram_region {
	__u64 gpa;
	__u64 size;
	__u64 offset;
	__u32 fd_index;		/* 1 .. nr fds - 1 */
	__u32 pad;
};

/*
 * HELLO (fds: doorbell eventfd, then RAM fds) and PEER_UP (the same fds
 * of the peer) describe one port.
 */
struct partlink_msg_port {
	__u32 abi_version;	/* PARTLINK_ABI_VERSION */
	__u32 port;		/* 0 .. PARTLINK_FABRIC_PORTS - 1 */
	__u32 epoch;		/* PEER_UP only */
	__u32 nr_regions;	/* 1 .. PARTLINK_MAX_REGIONS */
	__u8 mac[6];
	__u8 pad[2];
	char name[PARTLINK_NAME_LEN];	/* NUL-padded */
	struct partlink_ram_region regions[PARTLINK_MAX_REGIONS];
};

/* WELCOME (fds: the fabric segment) */
struct partlink_msg_welcome {
	__u32 port;
	__u32 epoch;
	__u32 network;
	__u32 flags;		/* PARTLINK_PORT_* flags */
};

/* REFUSE */
struct partlink_msg_refuse {
	char reason[256];	/* NUL-terminated, for the log */
};

/* PEER_DOWN */
struct partlink_msg_peer_down {
	__u32 port;
	__u32 epoch;
};

/*
 * MBOX_REQUEST carries the guest's request bytes unchecked; MBOX_ANSWER
 * the answer to the request with the same seq (a stale seq is dropped).
 */
struct partlink_msg_mbox_request {
	__u32 seq;
	__u32 pad;
	struct partlink_mbox_request request;
};

struct partlink_msg_mbox_answer {
	__u32 seq;
	__u32 pad;
	struct partlink_mbox_answer answer;
};

/* Segment ids on the fabric: bits of seg_rung and of the peers' masks */
#define PARTLINK_SEG_IDS		64

/*
 * SEGMENT (fds: the segment's sealed memfd, opened read-only when flags
 * has READ_ONLY): map it, or update the entry of an id already mapped
 * (same size and READ_ONLY; the fd is then closed unused).
 */
struct partlink_msg_segment {
	__u32 id;		/* 0 .. PARTLINK_SEG_IDS - 1 */
	__u32 flags;		/* PARTLINK_SEG_READ_ONLY, PARTLINK_SEG_PINNED */
	__u64 size;
	__u32 uid;
	__u32 gid;
	__u32 mode;
	__u32 pad;
	char name[PARTLINK_SEG_NAME_LEN];	/* NUL-terminated */
};

/* SEGMENT_GONE: unmap the segment with this id */
struct partlink_msg_segment_gone {
	__u32 id;
	__u32 pad;
};

/*
 * SEG_PEER (fds: the peer's doorbell eventfd, none when shared is 0):
 * the segments this port shares with the peer, replacing what an
 * earlier SEG_PEER said.  PEER_DOWN ends it too.
 */
struct partlink_msg_seg_peer {
	__u32 port;
	__u32 epoch;
	__u64 shared;		/* bit per segment id */
};

#endif /* PARTLINK_ABI_H */
