"""The v3 data path over qtest: the TX thread, doorbell and interrupt
suppression through the notify area, bounded work, bus mastering.

The test plays both drivers, as in test_partlink_pci_datapath.py.  The
device counts doorbells it took (tx_kicks) and DATA vectors it raised
(rx_interrupts) whether or not MSI-X is enabled, which is what these
tests read.
"""

import json
import os
import time

import pytest

from abi import ABI
from adapter import (NOTIFY, OWN, PCI_COMMAND, RX_BUFS, RX_RING, ST, TX_BUFS,
                     TX_RING, desc, frame)
from fabric import Fabric, hold_rx_lock, mac_of, wait_link

PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4


def wait_for(what, predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def pair(fabric):
    a, b = fabric.adapter(1), fabric.adapter(2)
    assert a.start() & ABI["PARTLINK_STATUS_FAILED"] == 0
    assert b.start(rx_size=256) & ABI["PARTLINK_STATUS_FAILED"] == 0
    wait_link(a, 1)
    wait_link(b, 1)
    yield a, b
    for adapter in (a, b):
        assert adapter.q.alive(), "QEMU died"


def queue_packets(a, n, payload=b"x" * 50):
    """Queue n one-entry packets to vm2 without ringing; returns slots."""
    data = frame(mac_of(2), mac_of(1), payload)
    a.q.memwrite(TX_BUFS, data)
    return a.queue(*[desc(TX_BUFS, len(data), OWN)] * n)


def test_idle_device_asks_for_a_doorbell(pair):
    a, _ = pair
    wait_for("tx_kick = 1", lambda: a.notify_field("TX_KICK") == 1)


def test_a_sleeping_device_waits_for_the_doorbell(pair):
    a, b = pair
    wait_for("tx_kick = 1", lambda: a.notify_field("TX_KICK") == 1)
    slots = queue_packets(a, 10)
    time.sleep(0.3)
    assert a.read_desc(a.tx_entry(slots[0]))[2] & OWN, \
        "the device took entries without a doorbell while it said it sleeps"
    a.writel("TX_KICK", 1)
    assert [a.tx_status(s) for s in slots] == [ST["OK"]] * 10
    assert a.counter("tx_kicks") == 1
    wait_for("tx_done", lambda: a.notify_field("TX_DONE") == 10)


def test_no_doorbell_while_the_device_works(fabric):
    """After a doorbell the thread keeps looking at the ring for a while
    (tx-linger-us, here 3 s so that qtest is fast enough to see it): it
    says so with tx_kick 0 and takes what is queued meanwhile unrung."""
    a = fabric.adapter(1, props=",tx-linger-us=3000000")
    b = fabric.adapter(2)
    a.start()
    b.start(rx_size=256)
    wait_link(a, 1)
    wait_for("tx_kick = 1", lambda: a.notify_field("TX_KICK") == 1)
    slots = queue_packets(a, 4)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    assert a.notify_field("TX_KICK") == 0
    for _ in range(3):
        slots = queue_packets(a, a.ring_size // 2)
        assert all(a.tx_status(s) == ST["OK"] for s in slots)
    assert a.counter("tx_kicks") == 1
    assert a.counter("copies") == 4 + 3 * (a.ring_size // 2)


def test_receiver_interrupt_once_per_arming(pair):
    a, b = pair
    b.set_notify_field("IRQ_ARMED", 1)
    slots = queue_packets(a, 5)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    wait_for("B's interrupt", lambda: b.counter("rx_interrupts") == 1)
    assert b.notify_field("IRQ_ARMED") == 0, "the sender did not take the arming"
    # Not armed again: more packets, no more interrupts.
    slots = queue_packets(a, 5)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    time.sleep(0.2)
    assert b.counter("rx_interrupts") == 1
    assert b.counter("rx_packets") == 10


def test_unarmed_receiver_gets_no_interrupt(pair):
    a, b = pair
    slots = queue_packets(a, 3)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    time.sleep(0.2)
    assert b.counter("rx_packets") == 3
    assert b.counter("rx_interrupts") == 0


def test_tx_interrupt_when_the_event_index_is_passed(pair):
    a, _ = pair
    a.set_notify_field("TX_EVENT", 4)
    a.set_notify_field("IRQ_ARMED", 1)
    slots = queue_packets(a, 3)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    time.sleep(0.2)
    assert a.counter("rx_interrupts") == 0, "entry 4 is not handed back yet"
    slots = queue_packets(a, 3)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["OK"] for s in slots)
    wait_for("A's TX interrupt", lambda: a.counter("rx_interrupts") == 1)
    assert a.notify_field("IRQ_ARMED") == 0


def test_doorbell_storm_is_counted_and_harmless(pair):
    a, b = pair
    for _ in range(2000):
        a.writel("TX_KICK", 1)
    wait_for("2000 doorbells counted", lambda: a.counter("tx_kicks") == 2000)
    assert a.q.alive() and b.q.alive()
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["OK"]


def set_bus_master(adapter, on):
    cmd = PCI_COMMAND_MEMORY | (PCI_COMMAND_MASTER if on else 0)
    adapter.q.pci_cfg_writel(adapter.devfn, PCI_COMMAND, cmd)


def test_bus_master_off_stops_the_device(pair):
    a, b = pair
    set_bus_master(a, False)
    slots = queue_packets(a, 2)
    a.writel("TX_KICK", 1)
    time.sleep(0.3)
    assert a.read_desc(a.tx_entry(slots[0]))[2] & OWN, \
        "the device used the ring with Bus Master Enable clear"
    assert b.counter("rx_packets") == 0
    set_bus_master(a, True)
    assert [a.tx_status(s) for s in slots] == [ST["OK"]] * 2
    assert b.counter("rx_packets") == 2


def test_bus_master_off_closes_the_rx_ring(pair):
    a, b = pair
    set_bus_master(b, False)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    assert b.receive() is None
    set_bus_master(b, True)
    data = frame(mac_of(2), mac_of(1), b"back" * 20)
    assert a.send(data, buf=TX_BUFS + 4096) == ST["OK"]
    assert b.receive()[0] == data


def test_bad_rx_entries_cost_a_bounded_scan(fabric):
    """A receiver that posts nothing but bad entries: each packet skips
    at most PARTLINK_RX_SKIP_MAX of them, not the whole ring."""
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start()
    b.start(rx_size=1024, post_rx=False)
    wait_link(a, 1)
    b.q.memwrite(RX_RING, desc(RX_BUFS, 16, OWN) * 1024)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    assert b.counter("rx_bad_buffer") == ABI["PARTLINK_RX_SKIP_MAX"]


@pytest.mark.parametrize("notify", [
    0,                       # none given
    NOTIFY + 8,              # unaligned
    TX_RING + 64,            # over the TX ring
    RX_RING,                 # over the RX ring
    (64 << 20) - 128,        # runs past RAM
])
def test_misplaced_notify_area_fails_the_device(fabric, notify):
    a = fabric.adapter(1)
    status = a.start(notify=notify, post_rx=False)
    assert status & ABI["PARTLINK_STATUS_FAILED"]


def test_moved_partition_is_unreachable_after_partlinkd_restart():
    """partlinkd restarted with vm2 in another network: vm1 can no
    longer reach it, even before partlinkd's PEER_DOWN arrives."""
    config = {"networks": {"blue": ["vm1", "vm2"]}}
    with Fabric(config) as fabric:
        a, b = fabric.adapter(1), fabric.adapter(2)
        a.start()
        b.start()
        wait_link(a, 1)
        data = frame(mac_of(2), mac_of(1), b"x" * 100)
        assert a.send(data) == ST["OK"]
        fabric.kill_daemon()
        fabric.config.write_text(json.dumps(
            {"networks": {"blue": ["vm1"], "red": ["vm2"]}}))
        fabric.start_daemon()
        fabric.wait_registered_again("vm1", "vm2")
        assert a.send(data, buf=TX_BUFS + 4096) == ST["NO_ROUTE"]
        assert b.counter("rx_packets") == 1
        # Both ends drop the peer: at WELCOME or at the first refused send.
        assert b.send(frame(mac_of(1), mac_of(2), b"y" * 100)) == ST["NO_ROUTE"]
        wait_link(a, 0)
        wait_link(b, 0)


def test_a_packet_larger_than_the_ring_never_claims_an_entry_twice(fabric):
    """16 posted buffers of 256 bytes hold 4096 bytes: a 5000-byte packet
    is dropped whole, and no RX entry is handed back."""
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start()
    b.start(post_rx=False)
    wait_link(a, 1)
    b.q.memwrite(RX_RING, b"".join(desc(RX_BUFS + i * 4096, 256, OWN)
                                   for i in range(b.rx_ring_size)))
    data = frame(mac_of(2), mac_of(1), bytes(5000 - 14))
    assert a.send(data) == ST["NO_BUFFER"]
    assert all(b.read_desc(b.rx_entry(i))[2] & OWN for i in range(b.rx_ring_size))
    assert b.counter("rx_packets") == 0
    # A packet that fits still goes through the same ring.
    small = frame(mac_of(2), mac_of(1), b"z" * 200)
    assert a.send(small, buf=TX_BUFS + 0x10000) == ST["OK"]
    assert b.receive()[0] == small


def test_a_peer_whose_ram_could_shrink_is_not_mapped(fabric):
    """vm2's RAM is a memfd without seals: it could truncate it under its
    peers' copies.  vm1 refuses to map it, says why, and stays up."""
    a = fabric.adapter(1)
    b = fabric.adapter(2, ram_opts=",seal=off")
    a.start()
    b.start()
    c = fabric.adapter(3)
    c.start()
    wait_link(c, 1)          # c maps a; b it refuses
    wait_link(a, 1)
    out = open(a.q.out_path).read()
    assert "cannot reach peer port 2" in out and "sealed" in out, out
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_ROUTE"]
    data = frame(mac_of(3), mac_of(1), b"y" * 100)
    assert a.send(data, buf=TX_BUFS + 4096) == ST["OK"]
    assert c.receive()[0] == data


def test_a_receiver_killed_mid_batch_costs_the_sender_nothing(fabric):
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start()
    b.start(rx_size=1024)
    wait_link(a, 1)
    slots = queue_packets(a, a.ring_size)
    a.writel("TX_KICK", 1)
    b.q.proc.kill()
    statuses = [a.tx_status(s) for s in slots]
    assert set(statuses) <= {ST["OK"], ST["NO_ROUTE"]}, statuses
    wait_link(a, 0)
    assert a.q.alive()
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100),
                  buf=TX_BUFS + 4096) in (ST["NO_ROUTE"], ST["LINK_DOWN"])


DIMM = 0x100000000  # q35's device memory starts at 4 GiB with 64 MiB of RAM


def test_only_guest_ram_is_published(fabric):
    """A shared memory DIMM (any shared memory mapped into the guest, as an
    ivshmem BAR or nvdimm) is not RAM the device hands to its peers: a
    buffer there is BAD_ADDR, as any address outside RAM."""
    a = fabric.adapter(1, extra_args=[
        "-m", "64M,slots=1,maxmem=256M",
        "-object", "memory-backend-memfd,id=dimm0,size=64M,share=on",
        "-device", "pc-dimm,memdev=dimm0"])
    b = fabric.adapter(2)
    a.start()
    b.start()
    wait_link(a, 1)
    data = frame(mac_of(2), mac_of(1), b"x" * 100)
    assert a.q.memread(DIMM, 4) == bytes(4), "the DIMM is not where the test expects"
    a.q.memwrite(DIMM, data)
    (slot,) = a.queue(desc(DIMM, len(data), OWN))
    a.writel("TX_KICK", 1)
    assert a.tx_status(slot) == ST["BAD_ADDR"]
    assert b.receive() is None
    assert a.send(data) == ST["OK"]
    assert b.receive()[0] == data


def test_reset_does_not_wait_for_a_stopped_sender(pair, fabric):
    """A sender stopped in the middle of a copy into vm2's buffers holds
    vm2's RX lock.  vm2's reset must not freeze vm2 waiting for it: the
    write returns at once, the ring is closed to new packets, and STATUS
    reads RESETTING until the holder is gone, then the driver may go on."""
    a, b = pair
    resetting = ABI["PARTLINK_STATUS_RESETTING"]
    pid = hold_rx_lock(fabric.segment, 2, 2)
    try:
        started = time.monotonic()
        b.writel("STATUS", 0)
        assert b.readl("STATUS") & resetting
        assert time.monotonic() - started < 1, "the reset waited for the holder"
        assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    finally:
        os.waitpid(pid, 0)   # the holder dies holding the lock
    wait_for("RESETTING to clear", lambda: b.readl("STATUS") == 0)
    assert b.start() & ABI["PARTLINK_STATUS_FAILED"] == 0
    data = frame(mac_of(2), mac_of(1), b"after" * 20)
    assert a.send(data, buf=TX_BUFS + 4096) == ST["OK"]
    b.rx_next = 0
    assert b.receive()[0] == data
