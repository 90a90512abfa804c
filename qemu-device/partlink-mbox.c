/*
 * partlink-pci: the hypervisor mailbox
 *
 * One request at a time from the guest to partlinkd.  The guest writes a
 * struct partlink_mbox_request into the MBOX_REQUEST window and 1 into
 * MBOX_SEND; the device forwards the bytes as written, under a new
 * sequence number, and puts partlinkd's answer into the MBOX_ANSWER
 * window.  The device never interprets the request.  When partlinkd
 * cannot be reached, or stays silent for PARTLINK_MBOX_TIMEOUT_MS, the
 * device answers UNAVAILABLE itself.
 *
 * Copyright (c) 2026 The partlink developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "hw/pci/msix.h"
#include "trace.h"
#include "partlink.h"

QEMU_BUILD_BUG_ON(sizeof(struct partlink_mbox_request) !=
                  PARTLINK_MBOX_REQUEST_SIZE);
QEMU_BUILD_BUG_ON(sizeof(struct partlink_mbox_answer) !=
                  PARTLINK_MBOX_ANSWER_SIZE);
QEMU_BUILD_BUG_ON(sizeof(struct partlink_msg_mbox_request) !=
                  8 + PARTLINK_MBOX_REQUEST_SIZE);
QEMU_BUILD_BUG_ON(sizeof(struct partlink_msg_mbox_answer) !=
                  8 + PARTLINK_MBOX_ANSWER_SIZE);
/* The windows, MBOX_SEND and MBOX_STATUS follow each other in BAR 0. */
QEMU_BUILD_BUG_ON(PARTLINK_REG_MBOX_REQUEST + PARTLINK_MBOX_REQUEST_SIZE !=
                  PARTLINK_REG_MBOX_ANSWER);
QEMU_BUILD_BUG_ON(PARTLINK_REG_MBOX_ANSWER + PARTLINK_MBOX_ANSWER_SIZE !=
                  PARTLINK_REG_MBOX_SEND);
QEMU_BUILD_BUG_ON(PARTLINK_REG_MBOX_STATUS + 4 > PARTLINK_REG_BAR_SIZE);

/* Is the 32-bit register at addr wholly inside [base, base + len)? */
static bool partlink_mbox_in(hwaddr addr, hwaddr base, size_t len)
{
    return addr >= base && addr - base <= len - 4;
}

static void partlink_mbox_done(PartlinkState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    timer_del(s->mbox.timer);
    s->mbox.status = PARTLINK_MBOX_DONE;
    if (msix_enabled(pdev)) {
        trace_partlink_irq(PARTLINK_VEC_MBOX);
        msix_notify(pdev, PARTLINK_VEC_MBOX);
    }
}

/* The device's own answer to the request in flight: nobody else gave one. */
static void partlink_mbox_unavailable(PartlinkState *s, const char *why)
{
    struct partlink_mbox_answer a = {
        .result = cpu_to_le32(PARTLINK_MBOX_UNAVAILABLE),
    };

    pstrcpy(a.reason, sizeof(a.reason), why);
    memcpy(s->mbox.answer, &a, sizeof(a));
    trace_partlink_mbox_answer(s->port_id, s->mbox.seq,
                               PARTLINK_MBOX_UNAVAILABLE, why);
    partlink_mbox_done(s);
}

static void partlink_mbox_timeout(void *opaque)
{
    PartlinkState *s = opaque;

    if (s->mbox.status != PARTLINK_MBOX_BUSY) {
        return;
    }
    trace_partlink_mbox_timeout(s->port_id, s->mbox.seq);
    partlink_mbox_unavailable(s, "partlinkd did not answer in time");
}

static void partlink_mbox_send(PartlinkState *s)
{
    Error *err = NULL;

    /* A new seq makes a late answer to any earlier request stale. */
    s->mbox.seq++;
    s->mbox.status = PARTLINK_MBOX_BUSY;
    trace_partlink_mbox_send(s->port_id, s->mbox.seq,
                             ldl_le_p(s->mbox.request));
    if (!partlink_fabric_mbox_request(s, s->mbox.seq, s->mbox.request,
                                      &err)) {
        /* A failed write may have closed the chardev, and answered. */
        if (s->mbox.status == PARTLINK_MBOX_BUSY) {
            partlink_mbox_unavailable(s, error_get_pretty(err));
        }
        error_free(err);
        return;
    }
    timer_mod(s->mbox.timer, qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) +
              PARTLINK_MBOX_TIMEOUT_MS);
}

bool partlink_mbox_read(PartlinkState *s, hwaddr addr, uint64_t *val)
{
    if (partlink_mbox_in(addr, PARTLINK_REG_MBOX_REQUEST,
                         sizeof(s->mbox.request))) {
        *val = ldl_le_p(s->mbox.request + (addr - PARTLINK_REG_MBOX_REQUEST));
        return true;
    }
    if (partlink_mbox_in(addr, PARTLINK_REG_MBOX_ANSWER,
                         sizeof(s->mbox.answer))) {
        *val = ldl_le_p(s->mbox.answer + (addr - PARTLINK_REG_MBOX_ANSWER));
        return true;
    }
    if (addr == PARTLINK_REG_MBOX_STATUS) {
        *val = s->mbox.status;
        return true;
    }
    return false;
}

void partlink_mbox_write(PartlinkState *s, hwaddr addr, unsigned size,
                         uint64_t val)
{
    if (partlink_mbox_in(addr, PARTLINK_REG_MBOX_REQUEST,
                         sizeof(s->mbox.request))) {
        if (s->mbox.status == PARTLINK_MBOX_BUSY) {
            partlink_bad_access(s, addr, size, "mailbox request written "
                                "while busy");
            return;
        }
        stl_le_p(s->mbox.request + (addr - PARTLINK_REG_MBOX_REQUEST), val);
        return;
    }
    if (addr != PARTLINK_REG_MBOX_SEND) {
        partlink_bad_access(s, addr, size, "write to read-only or unknown "
                            "register");
        return;
    }
    if (val != PARTLINK_MBOX_SEND) {
        partlink_bad_access(s, addr, size, "MBOX_SEND value is not 1");
        return;
    }
    if (s->mbox.status == PARTLINK_MBOX_BUSY) {
        partlink_bad_access(s, addr, size, "MBOX_SEND while busy");
        return;
    }
    partlink_mbox_send(s);
}

void partlink_mbox_answer(PartlinkState *s, uint32_t seq,
                          const struct partlink_mbox_answer *answer)
{
    struct partlink_mbox_answer a = *answer;

    if (s->mbox.status != PARTLINK_MBOX_BUSY || seq != s->mbox.seq) {
        /* We gave up on that request, or the driver reset the device. */
        trace_partlink_mbox_answer(s->port_id, seq, le32_to_cpu(a.result),
                                   "stale, dropped");
        return;
    }
    /* The reason is for people: a string, whatever partlinkd sent. */
    a.reason[sizeof(a.reason) - 1] = '\0';
    memcpy(s->mbox.answer, &a, sizeof(a));
    trace_partlink_mbox_answer(s->port_id, seq, le32_to_cpu(a.result),
                               "from partlinkd");
    partlink_mbox_done(s);
}

void partlink_mbox_disconnected(PartlinkState *s)
{
    if (s->mbox.status == PARTLINK_MBOX_BUSY) {
        partlink_mbox_unavailable(s, "the connection to partlinkd closed");
    }
}

/* The sequence number goes on: partlinkd may still answer an old request. */
void partlink_mbox_reset(PartlinkState *s)
{
    if (s->mbox.timer) {
        timer_del(s->mbox.timer);
    }
    s->mbox.status = PARTLINK_MBOX_IDLE;
    memset(s->mbox.request, 0, sizeof(s->mbox.request));
    memset(s->mbox.answer, 0, sizeof(s->mbox.answer));
}

void partlink_mbox_realize(PartlinkState *s)
{
    s->mbox.timer = timer_new_ms(QEMU_CLOCK_VIRTUAL, partlink_mbox_timeout, s);
    partlink_mbox_reset(s);
}

void partlink_mbox_unrealize(PartlinkState *s)
{
    partlink_mbox_reset(s);
    timer_free(s->mbox.timer);
    s->mbox.timer = NULL;
}
