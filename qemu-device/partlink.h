/*
 * partlink-pci: state shared by the files of the device model
 *
 *   partlink-pci.c     PCI device, registers, interrupts, reset
 *   partlink-ram.c     guest RAM layouts and bounds-checked translation
 *   partlink-fabric.c  the fabric protocol with partlinkd, peers
 *   partlink-tx.c      the data path: the TX thread, routing, the one copy
 *   partlink-mbox.c    the hypervisor mailbox
 *   partlink-seg.c     shared segments: the BAR 2 window, table, doorbells
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_MISC_PARTLINK_H
#define HW_MISC_PARTLINK_H

#include "chardev/char-fe.h"
#include "exec/memory.h"
#include "hw/pci/pci_device.h"
#include "net/net.h"
#include "qemu/event_notifier.h"
#include "qemu/notify.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qom/object.h"

#include "partlink/partlink_abi.h"

#define TYPE_PARTLINK_PCI "partlink-pci"
OBJECT_DECLARE_SIMPLE_TYPE(PartlinkState, PARTLINK_PCI)

/* Guest-physical [gpa, gpa + size) is host memory [host, host + size). */
typedef struct PartlinkRamRegion {
    uint64_t gpa;
    uint64_t size;
    uint64_t offset;            /* in the file descriptor */
    uint32_t fd_index;          /* in the fabric message, 1-based */
    uint8_t *host;
} PartlinkRamRegion;

typedef struct PartlinkRamLayout {
    unsigned nr;
    PartlinkRamRegion region[PARTLINK_MAX_REGIONS];
} PartlinkRamLayout;

/* A mapping of a peer's RAM file, owned by the peer entry. */
typedef struct PartlinkMapping {
    void *addr;
    size_t len;
} PartlinkMapping;

typedef struct PartlinkPeer {
    bool present;
    uint32_t epoch;
    int64_t busy_until;         /* its RX lock timed out: skip until then */
    MACAddr mac;
    int doorbell_fd;
    PartlinkRamLayout ram;
    unsigned nr_maps;
    PartlinkMapping maps[PARTLINK_MAX_REGIONS];
} PartlinkPeer;

/* A file descriptor from partlinkd and the message it came with. */
typedef struct PartlinkPendingFd {
    int fd;
    uint64_t msg;               /* stream offset of the message's start */
} PartlinkPendingFd;

/* The hypervisor mailbox: one request in flight to partlinkd. */
typedef struct PartlinkMbox {
    uint32_t status;            /* PARTLINK_MBOX_IDLE, _BUSY or _DONE */
    uint32_t seq;               /* of the last request sent; never reset */
    QEMUTimer *timer;           /* partlinkd's time to answer */
    uint8_t request[PARTLINK_MBOX_REQUEST_SIZE];
    uint8_t answer[PARTLINK_MBOX_ANSWER_SIZE];
} PartlinkMbox;

typedef struct PartlinkSegMemory PartlinkSegMemory;

/* A segment in the window; free while mem is NULL. */
typedef struct PartlinkSegment {
    PartlinkSegMemory *mem;
    uint32_t id;                /* on the whole fabric */
    uint32_t flags;             /* PARTLINK_SEG_READ_ONLY, _PINNED */
    uint64_t offset;            /* in the window */
    uint64_t size;
    uint32_t uid;
    uint32_t gid;
    uint32_t mode;
    char name[PARTLINK_SEG_NAME_LEN];
} PartlinkSegment;

/*
 * A removed segment's slot and window range, not to be reused until the
 * driver acknowledges the generation that removed it (SEG_ACK).
 */
typedef struct PartlinkSegHole {
    bool held;
    uint32_t generation;        /* the one that announced the removal */
    uint64_t offset;
    uint64_t size;
} PartlinkSegHole;

/* A partition this one shares segments with, to ring. */
typedef struct PartlinkSegPeer {
    int doorbell_fd;
    uint32_t epoch;
    uint64_t shared;            /* segment ids, a bit each */
} PartlinkSegPeer;

struct PartlinkState {
    PCIDevice parent_obj;

    MemoryRegion regs;
    Error *migration_blocker;

    /* properties */
    MACAddr mac;
    uint32_t port_id;
    char *name;
    CharBackend chr;

    /* driver-visible state */
    uint32_t drv_features;
    uint32_t status;
    uint32_t scratch;
    uint32_t bad_access;
    uint32_t irq_ctrl;
    uint64_t tx_ring_gpa;
    uint32_t tx_ring_size;
    uint32_t tx_pos;
    uint32_t tx_irq_pos;        /* tx_pos when the driver was last told */
    uint8_t *tx_ring;           /* host address, valid while DRIVER_OK */
    uint64_t notify_gpa;
    struct partlink_notify *notify;     /* host address, as tx_ring */
    bool bus_master;            /* PCI_COMMAND_MASTER: may the device DMA */
    uint64_t rx_ring_gpa;
    uint32_t rx_ring_size;
    bool rx_published;          /* since DRIVER_OK: senders may have filled */
    bool rx_head_saved;         /* rx_head below comes from an old fabric */
    uint32_t rx_head;
    uint32_t counter_hi_latch;
    PartlinkMbox mbox;

    /*
     * The TX thread works the TX ring outside the BQL.  tx_lock guards
     * everything it reads that the main loop or a vCPU changes: ring
     * registers, status, bus mastering, peers, the fabric mapping.  A
     * round of the thread is bounded and never waits long for a peer, so
     * whoever takes tx_lock waits for one round at most.
     */
    QemuThread tx_thread;
    QemuMutex tx_lock;
    EventNotifier tx_kick;      /* the TX_KICK ioeventfd */
    EventNotifier tx_wake;      /* stop the thread */
    bool tx_thread_running;
    uint64_t tx_notify_due;     /* ports this round delivered to, a bit each */
    bool tx_stop;
    uint32_t tx_linger_us;      /* property: poll this long before sleeping */
    uint32_t tx_irq_gap_us;     /* property: TX interrupts this far apart */
    int64_t tx_irq_time;        /* of the last TX interrupt */

    /*
     * Counters live in this port's slot of the fabric segment, where
     * senders count what they deliver here; before registration, here.
     */
    __u64 local_counters[PARTLINK_NR_COUNTERS];
    __u64 *counters;

    /* fabric */
    EventNotifier doorbell;     /* peers kick it after filling our RX */
    QEMUBH *peer_check;         /* the TX thread found a peer's slot changed */
    QEMUTimer *rx_sync_timer;   /* retries publishing our RX ring */
    bool rx_sync_pending;       /* our RX lock was busy: not published yet */
    Notifier machine_done;
    bool machine_ready;
    bool registered;            /* WELCOME received, segment mapped */
    bool ever_welcomed;
    struct partlink_fabric *fabric;
    dev_t fabric_dev;
    ino_t fabric_ino;
    uint32_t epoch;
    uint32_t network;
    uint32_t port_flags;
    PartlinkRamLayout ram;
    int ram_fds[PARTLINK_MAX_REGIONS];
    unsigned nr_ram_fds;
    uint8_t msg[sizeof(struct partlink_msg) + PARTLINK_MSG_MAX_LEN];
    size_t msg_len;
    uint64_t msg_pos;           /* stream offset of msg[0] */
    PartlinkPendingFd pending_fds[PARTLINK_MAX_FDS * 2];
    unsigned nr_pending_fds;
    PartlinkPeer peers[PARTLINK_FABRIC_PORTS];

    /* shared segments, under the BQL */
    uint64_t seg_window_size;   /* property segment-window; 0: no BAR 2 */
    MemoryRegion seg_window;
    MemoryRegion seg_hole;
    PartlinkSegment segs[PARTLINK_SEG_SLOTS];
    PartlinkSegHole seg_holes[PARTLINK_SEG_SLOTS];     /* by slot */
    PartlinkSegPeer seg_peers[PARTLINK_FABRIC_PORTS];
    uint32_t seg_generation;
    uint32_t seg_ack;           /* the generation the driver applied */
    uint32_t seg_pending;       /* slots rung, a bit each */
    uint32_t seg_ring_status;
    uint32_t seg_errors;
};

/* partlink-pci.c */
void partlink_count(PartlinkState *s, unsigned counter, uint64_t n);
void partlink_link_changed(PartlinkState *s);
void partlink_bad_access(PartlinkState *s, hwaddr addr, unsigned size,
                         const char *why);

/* partlink-ram.c */
void *partlink_ram_translate(const PartlinkRamLayout *layout, uint64_t gpa,
                             uint64_t len);
bool partlink_ram_layout_own(PartlinkRamLayout *layout, int *fds,
                             unsigned *nr_fds, Error **errp);
bool partlink_ram_map_peer(PartlinkPeer *peer,
                           const struct partlink_ram_region *regions,
                           unsigned nr_regions, const int *fds,
                           unsigned nr_fds, Error **errp);
void partlink_ram_unmap_peer(PartlinkPeer *peer);

/* partlink-fabric.c */
void partlink_fabric_realize(PartlinkState *s, Error **errp);
void partlink_fabric_unrealize(PartlinkState *s);
void partlink_fabric_publish_rx(PartlinkState *s);
struct partlink_fabric_port *partlink_fabric_port(PartlinkState *s,
                                                  uint32_t port);
/* How long partlink_port_lock() waits for a busy RX lock */
typedef enum PartlinkLockWait {
    PARTLINK_LOCK_TRY,          /* not at all */
    PARTLINK_LOCK_BOUNDED,      /* 2 ms: a sender, or the BQL held */
    PARTLINK_LOCK_WAIT,         /* until it is free */
} PartlinkLockWait;

bool partlink_port_lock(struct partlink_fabric_port *port,
                        PartlinkLockWait wait);
bool partlink_fabric_rx_resetting(PartlinkState *s);
bool partlink_fabric_owns_slot(PartlinkState *s);
bool partlink_fabric_slot_valid(PartlinkState *s);
void partlink_port_unlock(struct partlink_fabric_port *port);
void partlink_drop_peer(PartlinkState *s, uint32_t port);
bool partlink_peer_valid(PartlinkState *s, uint32_t port);
unsigned partlink_nr_peers(PartlinkState *s);
bool partlink_fabric_mbox_request(PartlinkState *s, uint32_t seq,
                                  const uint8_t *request, Error **errp);

/* partlink-tx.c */
void partlink_tx_realize(PartlinkState *s, Error **errp);
void partlink_tx_unrealize(PartlinkState *s);
void partlink_tx_wake(PartlinkState *s);

/* partlink-mbox.c */
void partlink_mbox_realize(PartlinkState *s);
void partlink_mbox_unrealize(PartlinkState *s);
void partlink_mbox_reset(PartlinkState *s);
bool partlink_mbox_read(PartlinkState *s, hwaddr addr, uint64_t *val);
void partlink_mbox_write(PartlinkState *s, hwaddr addr, unsigned size,
                         uint64_t val);
void partlink_mbox_answer(PartlinkState *s, uint32_t seq,
                          const struct partlink_mbox_answer *answer);
void partlink_mbox_disconnected(PartlinkState *s);

/* partlink-seg.c */
void partlink_seg_realize(PartlinkState *s, Error **errp);
void partlink_seg_unrealize(PartlinkState *s);
void partlink_seg_reset(PartlinkState *s);
bool partlink_seg_read(PartlinkState *s, hwaddr addr, uint64_t *val);
typedef enum PartlinkSegWrite {
    PARTLINK_SEG_WRITE_NOT_MINE,
    PARTLINK_SEG_WRITE_DONE,
    PARTLINK_SEG_WRITE_REFUSED,
} PartlinkSegWrite;
PartlinkSegWrite partlink_seg_write(PartlinkState *s, hwaddr addr,
                                    uint64_t val);
bool partlink_seg_add(PartlinkState *s, const struct partlink_msg_segment *m,
                      int fd, Error **errp);
void partlink_seg_remove(PartlinkState *s, uint32_t id);
void partlink_seg_forget_all(PartlinkState *s);
void partlink_seg_peer(PartlinkState *s, uint32_t port, uint32_t epoch,
                       uint64_t shared, int fd);
void partlink_seg_peer_down(PartlinkState *s, uint32_t port, uint32_t epoch);
void partlink_seg_doorbell(PartlinkState *s);

#endif
