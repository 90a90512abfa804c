"""The one-copy data path, driven over qtest with a real partlinkd.

Two (or three) QEMUs run partlink-pci with no guest kernel; the test plays
both drivers: it writes descriptors and buffers into guest RAM, kicks, and
reads the results and the device counters.  Every hostile descriptor must
get its error status and counter, and the destination's RAM around the
target buffer must stay untouched, byte for byte.
"""

import os
import time

import pytest

from abi import ABI
from adapter import (MORE, OWN, ST, RX_BUF_SIZE, RX_BUFS, RX_RING, TX_BUFS,
                     TX_RING, desc, frame)
from fabric import Fabric, hold_rx_lock, mac_of, wait_link

RAM_SIZE = 64 << 20
PATTERN = 0xA5


@pytest.fixture
def pair(fabric):
    a, b = fabric.adapter(1), fabric.adapter(2)
    assert a.start() & ABI["PARTLINK_STATUS_FAILED"] == 0
    assert b.start() & ABI["PARTLINK_STATUS_FAILED"] == 0
    wait_link(a, 1)
    wait_link(b, 1)
    # Paint B's RX buffers so that any stray byte shows.
    b.q.memwrite(RX_BUFS, bytes([PATTERN]) * (RX_BUF_SIZE * b.rx_ring_size + 4096))
    yield a, b
    for adapter in (a, b):
        assert adapter.q.alive(), "QEMU died"


def b_ram_untouched(b, used):
    """Everything of B's RX buffer area but the first `used` bytes is paint."""
    area = b.q.memread(RX_BUFS, RX_BUF_SIZE * b.rx_ring_size + 4096)
    return area[used:] == bytes([PATTERN]) * (len(area) - used)


def test_packet_arrives_with_one_copy(pair):
    a, b = pair
    data = frame(mac_of(2), mac_of(1), bytes(range(256)) * 4)
    assert a.send(data) == ST["OK"]
    got, first = b.receive()
    assert got == data
    assert first[3] == ST["OK"]
    assert b_ram_untouched(b, len(data))
    ca, cb = a.counters(), b.counters()
    assert (ca["tx_packets"], ca["copies"], ca["bytes_copied"]) == (1, 1, len(data))
    assert (cb["rx_packets"], cb["rx_bytes"]) == (1, len(data))
    assert b.receive() is None


def test_chains_scatter_and_gather(pair):
    a, b = pair
    data = frame(mac_of(2), mac_of(1), os.urandom(5000))
    # Three TX segments of uneven sizes; 2 KiB RX buffers take three.
    cuts = [0, 100, 3001, len(data)]
    a.q.memwrite(TX_BUFS, data[:100])
    a.q.memwrite(TX_BUFS + 0x10000, data[100:3001])
    a.q.memwrite(TX_BUFS + 0x20000, data[3001:])
    addrs = [TX_BUFS, TX_BUFS + 0x10000, TX_BUFS + 0x20000]
    slots = a.queue(*[desc(addrs[i], cuts[i + 1] - cuts[i],
                           OWN | (MORE if i < 2 else 0)) for i in range(3)])
    a.writel("TX_KICK", 1)
    assert [a.tx_status(s) for s in slots] == [ST["OK"]] * 3
    got, _ = b.receive()
    assert got == data
    assert b.rx_next == 3
    assert a.counter("copies") == 1


@pytest.mark.parametrize("addr,length,status", [
    (RAM_SIZE - 100, 200, "BAD_ADDR"),           # runs past the end of RAM
    (RAM_SIZE + 0x1000, 64, "BAD_ADDR"),         # beyond RAM
    (0xFFFFFFFFFFFFFF00, 0x200, "BAD_ADDR"),     # wraps around
    (0x1000, 64, "BAD_ADDR"),                    # below 1 MiB: not shared
    (0xFE000000, 64, "BAD_ADDR"),                # the device's own BAR
    (TX_BUFS, 0, "BAD_LEN"),                     # zero
    (TX_BUFS, 0xFFFFFFFF, "BAD_LEN"),            # huge
    (TX_BUFS, 10, "BAD_LEN"),                    # shorter than a header
])
def test_hostile_tx_descriptors(pair, addr, length, status):
    a, b = pair
    a.q.memwrite(TX_BUFS, frame(mac_of(2), mac_of(1), b"x" * 100))
    (slot,) = a.queue(desc(addr, length, OWN))
    a.writel("TX_KICK", 1)
    assert a.tx_status(slot) == ST[status]
    assert a.counter("bad_descriptors") == 1
    assert a.counter("copies") == 0
    assert b.receive() is None
    assert b_ram_untouched(b, 0)
    # The ring goes on: the next good packet is delivered.
    assert a.send(frame(mac_of(2), mac_of(1), b"ok" * 50)) == ST["OK"]
    assert b.receive()[0].endswith(b"ok" * 50)


@pytest.mark.parametrize("entry", [
    desc(TX_BUFS, 114, OWN, reserved=1),
    desc(TX_BUFS, 114, OWN | 0x100),                            # unknown flag
    desc(TX_BUFS, 114, OWN | ABI["PARTLINK_DESC_NEEDS_CSUM"]),  # not accepted
    desc(TX_BUFS, 114, OWN, gso_type=ABI["PARTLINK_GSO_TCPV4"], gso_size=1448),
    desc(TX_BUFS, 114, OWN, gso_type=0x42),
])
def test_bad_descriptor_fields(pair, entry):
    a, b = pair
    a.q.memwrite(TX_BUFS, frame(mac_of(2), mac_of(1), b"x" * 100))
    (slot,) = a.queue(entry)
    a.writel("TX_KICK", 1)
    assert a.tx_status(slot) == ST["BAD_DESC"]
    assert a.counter("bad_descriptors") == 1
    assert b.receive() is None


def test_chain_longer_than_allowed(pair):
    a, b = pair
    a.q.memwrite(TX_BUFS, frame(mac_of(2), mac_of(1), b"x" * 100))
    # 16 entries, every one with MORE: the chain never ends in the ring.
    slots = a.queue(*[desc(TX_BUFS, 114, OWN | MORE)] * a.ring_size)
    a.writel("TX_KICK", 1)
    assert all(a.tx_status(s) == ST["BAD_DESC"] for s in slots)
    assert b.receive() is None


def test_spoofed_source_mac(pair):
    a, b = pair
    assert a.send(frame(mac_of(2), mac_of(9), b"x" * 100)) == ST["SPOOFED"]
    assert a.counter("spoofed") == 1
    assert b.receive() is None


def test_unknown_destination(pair):
    a, b = pair
    assert a.send(frame(mac_of(9), mac_of(1), b"x" * 100)) == ST["NO_ROUTE"]
    assert a.counter("no_route") == 1
    # Its own MAC is no route either: the device does not loop back.
    assert a.send(frame(mac_of(1), mac_of(1), b"x" * 100)) == ST["NO_ROUTE"]


def test_no_posted_buffer_drops_at_once(fabric):
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start()
    b.start(post_rx=False)
    wait_link(a, 1)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    assert a.counter("tx_no_buffer") == 1
    assert b.counter("rx_no_buffer") == 1
    assert a.counter("copies") == 0


def test_receiver_reset_stops_delivery(pair):
    a, b = pair
    b.writel("STATUS", 0)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    assert b_ram_untouched(b, 0)


@pytest.mark.parametrize("addr,length", [
    (RAM_SIZE - 1024, 2048),      # past the end of B's RAM
    (0xFFFFFFFFFFFFF800, 2048),   # wraps
    (RX_RING, 2048),              # over B's own RX ring
    (RX_RING - 1024, 2048),       # overlapping its start
    (RX_BUFS, 16),                # too small to be a buffer
])
def test_hostile_rx_buffers(fabric, addr, length):
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start()
    b.start(post_rx=False)
    wait_link(b, 1)
    ring_before = b.q.memread(RX_RING, 32 * b.rx_ring_size)
    b.q.memwrite(RX_RING, desc(addr, length, OWN))
    b.q.memwrite(RX_BUFS, bytes([PATTERN]) * 8192)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
    entry = b.read_desc(RX_RING)
    assert not entry[2] & OWN and entry[3] in (ST["BAD_ADDR"], ST["BAD_LEN"])
    assert b.counter("rx_bad_buffer") == 1
    assert b.q.memread(RX_RING + 32, 32 * (b.rx_ring_size - 1)) == ring_before[32:]
    assert b.q.memread(RX_BUFS, 8192) == bytes([PATTERN]) * 8192


@pytest.mark.parametrize("tx,rx,size", [
    (RAM_SIZE - 256, RX_RING, 16),     # TX ring runs past RAM
    (TX_RING + 8, RX_RING, 16),        # unaligned
    (TX_RING, RX_RING, 24),            # not a power of two
    (TX_RING, RX_RING, 8192),          # too big
    (TX_RING, TX_RING + 256, 16),      # rings overlap
    (0x8000, RX_RING, 16),             # below 1 MiB
])
def test_misplaced_rings_fail_the_device(fabric, tx, rx, size):
    a = fabric.adapter(1)
    status = a.start(tx_ring=tx, rx_ring=rx, size=size, post_rx=False)
    assert status & ABI["PARTLINK_STATUS_FAILED"]
    assert a.counter("bad_descriptors") == 1
    a.writel("TX_KICK", 1)
    assert a.readl("BAD_ACCESS") >= 1


def test_ring_wraps_and_counts_stay_exact(pair):
    a, b = pair
    for i in range(3 * a.ring_size):
        data = frame(mac_of(2), mac_of(1), bytes([i]) * (60 + i))
        assert a.send(data, buf=TX_BUFS + (i % 4) * 4096) == ST["OK"]
        got, _ = b.receive()
        assert got == data
        # Re-post the buffer, as a driver would.
        slot = (b.rx_next - 1) % b.rx_ring_size
        b.q.memwrite(RX_RING + 32 * slot,
                     desc(RX_BUFS + slot * RX_BUF_SIZE, RX_BUF_SIZE, OWN))
    assert a.counter("copies") == b.counter("rx_packets") == 3 * a.ring_size


def test_broadcast_reaches_every_peer_once(fabric):
    a, b, c = fabric.adapter(1), fabric.adapter(2), fabric.adapter(3)
    for x in (a, b, c):
        x.start()
    for x in (a, b, c):
        wait_link(x, 2)
    data = frame("ff:ff:ff:ff:ff:ff", mac_of(1), b"who-has" * 10)
    assert a.send(data) == ST["OK"]
    assert b.receive()[0] == data and c.receive()[0] == data
    assert a.counter("copies") == 2


def test_networks_are_isolated():
    config = {"networks": {"blue": ["vm1", "vm2"], "red": ["vm3"]}}
    with Fabric(config) as fabric:
        a, b, c = fabric.adapter(1), fabric.adapter(2), fabric.adapter(3)
        for x in (a, b, c):
            x.start()
        wait_link(a, 1)
        wait_link(c, 0)
        # A forged destination MAC cannot reach another network.
        assert a.send(frame(mac_of(3), mac_of(1), b"x" * 100)) == ST["NO_ROUTE"]
        assert c.send(frame(mac_of(1), mac_of(3), b"x" * 100)) == ST["NO_ROUTE"]
        bcast = frame("ff:ff:ff:ff:ff:ff", mac_of(1), b"y" * 100)
        assert a.send(bcast) == ST["OK"]
        assert b.receive()[0] == bcast
        assert c.receive() is None


def test_offload_needs_the_receivers_feature(fabric):
    csum = ABI["PARTLINK_F_CSUM"]
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start(features=csum)
    b.start(features=0)
    wait_link(a, 1)
    data = frame(mac_of(2), mac_of(1), b"x" * 100)
    a.q.memwrite(TX_BUFS, data)
    (slot,) = a.queue(desc(TX_BUFS, len(data),
                           OWN | ABI["PARTLINK_DESC_NEEDS_CSUM"],
                           csum_start=34, csum_offset=16))
    a.writel("TX_KICK", 1)
    assert a.tx_status(slot) == ST["NO_OFFLOAD"]
    assert b.receive() is None


def test_offload_metadata_reaches_the_receiver(fabric):
    feats = ABI["PARTLINK_F_CSUM"] | ABI["PARTLINK_F_GSO"]
    a, b = fabric.adapter(1), fabric.adapter(2)
    a.start(features=feats)
    b.start(features=feats)
    wait_link(a, 1)
    data = frame(mac_of(2), mac_of(1), os.urandom(3000))
    a.q.memwrite(TX_BUFS, data)
    (slot,) = a.queue(desc(TX_BUFS, len(data),
                           OWN | ABI["PARTLINK_DESC_NEEDS_CSUM"],
                           csum_start=34, csum_offset=16, gso_size=1448,
                           gso_type=ABI["PARTLINK_GSO_TCPV4"], hdr_len=66))
    a.writel("TX_KICK", 1)
    assert a.tx_status(slot) == ST["OK"]
    got, first = b.receive()
    assert got == data
    assert first[2] & ABI["PARTLINK_DESC_NEEDS_CSUM"]
    assert first[4:9] == (34, 16, 1448, ABI["PARTLINK_GSO_TCPV4"], 66)


def test_peer_that_dies_drops_out(fabric):
    a, b, c = fabric.adapter(1), fabric.adapter(2), fabric.adapter(3)
    for x in (a, b, c):
        x.start()
    wait_link(a, 2)
    b.q.proc.kill()
    wait_link(a, 1)
    wait_link(c, 1)
    assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_ROUTE"]
    data = frame(mac_of(3), mac_of(1), b"still here" * 10)
    assert a.send(data) == ST["OK"]
    assert c.receive()[0] == data


def test_traffic_survives_partlinkd_restart(pair, fabric):
    a, b = pair
    fabric.kill_daemon()
    data = frame(mac_of(2), mac_of(1), b"no daemon" * 10)
    assert a.send(data) == ST["OK"]
    assert b.receive()[0] == data
    fabric.start_daemon()
    # Devices re-register; their peers, epochs and ring positions stay.
    fabric.wait_registered_again("vm1", "vm2")
    wait_link(a, 1)
    wait_link(b, 1)
    for i in range(3):
        assert a.send(data, buf=TX_BUFS + 4096) == ST["OK"]
        assert b.receive()[0] == data
    assert "refused" not in fabric.log()


def test_lock_of_a_dead_holder_is_recovered(pair, fabric):
    a, b = pair
    pid = hold_rx_lock(fabric.segment, 2, 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    data = frame(mac_of(2), mac_of(1), b"after" * 20)
    assert a.send(data) == ST["OK"]
    assert b.receive()[0] == data


def test_stuck_lock_holder_does_not_stall_the_sender(pair, fabric):
    """A holder that never lets go costs a drop, not a hung vCPU."""
    a, b = pair
    pid = hold_rx_lock(fabric.segment, 2, 3)
    try:
        started = time.monotonic()
        assert a.send(frame(mac_of(2), mac_of(1), b"x" * 100)) == ST["NO_BUFFER"]
        assert time.monotonic() - started < 2
        assert b.counter("rx_no_buffer") == 1
    finally:
        os.waitpid(pid, 0)
    data = frame(mac_of(2), mac_of(1), b"after" * 20)
    assert a.send(data) == ST["OK"]
    assert b.receive()[0] == data


def test_dead_holder_mid_handback_is_repaired(pair, fabric):
    """A sender killed while handing back a 2-entry chain: the chain's
    second entry is back with the driver, its first is not.  The next
    sender hands both back as errors and delivers after them."""
    a, b = pair
    second = b.read_desc(b.rx_entry(1))
    b.q.memwrite(b.rx_entry(1), desc(second[0], 700, MORE))  # handed back
    pid = hold_rx_lock(fabric.segment, 2, 0, claimed=2)
    os.waitpid(pid, 0)
    data = frame(mac_of(2), mac_of(1), b"repaired" * 10)
    assert a.send(data) == ST["OK"]
    assert b.receive() == (None, b.read_desc(b.rx_entry(0)))
    assert b.read_desc(b.rx_entry(0))[3] == ST["BAD_DESC"]
    assert b.receive()[1][3] == ST["BAD_DESC"]
    assert b.receive()[0] == data
    assert b.counter("rx_bad_buffer") == 2
