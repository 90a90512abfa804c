"""Shared segments from the device's side (spec section 16), over qtest.

A scripted partlinkd (fabric.FakeDaemon) hands the device sealed memfds
with SEGMENT messages, takes them back with SEGMENT_GONE and names peers
to ring with SEG_PEER; the test plays the guest: it reads the table in
BAR 0, the memory through BAR 2, and rings through SEG_RING.  Everything
partlinkd says is checked too: a malformed message closes the connection,
memory the device cannot safely map is left out.
"""

import fcntl
import mmap
import os
import select
import socket
import struct
import time

import pytest

from abi import ABI
from adapter import BAR0
from fabric import FABRIC_SIZE, MSG, FakeDaemon

BAR2 = 0x200000000  # 8 GiB: above the 64 MiB of RAM, in PCI space
PCI_BAR2, PCI_BAR3 = 0x18, 0x1C
PAGE = 4096
SLOTS = ABI["PARTLINK_SEG_SLOTS"]
ENTRY = struct.Struct("<32sQQIIHHI")  # struct partlink_seg_entry
SEGMENT = struct.Struct("=IIQIIII32s")  # struct partlink_msg_segment
SEG_PEER = struct.Struct("=IIQ")  # struct partlink_msg_seg_peer
PRESENT = ABI["PARTLINK_SEG_PRESENT"]
READ_ONLY = ABI["PARTLINK_SEG_READ_ONLY"]
PINNED = ABI["PARTLINK_SEG_PINNED"]
SEG_ST = {name[len("PARTLINK_SEG_ST_"):]: val for name, val in ABI.items()
          if name.startswith("PARTLINK_SEG_ST_")}
RING_ALL = ABI["PARTLINK_SEG_RING_ALL"]
PORT_SHIFT = ABI["PARTLINK_SEG_RING_PORT_SHIFT"]
SLOT_SEG_RUNG = 200  # offsetof(struct partlink_fabric_port, seg_rung)
PEER = 5             # a peer port the scripted daemon makes up
PEER_EPOCH = 11


def memfd(size, seal=True, fill=b""):
    fd = os.memfd_create("seg", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if fill:
        os.pwrite(fd, fill, 0)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    return fd


def send_segment(d, seg_id, name, size, fd, flags=0, uid=0, gid=0, mode=0o600):
    body = SEGMENT.pack(seg_id, flags, size, uid, gid, mode, 0, name.encode())
    socket.send_fds(d.conn, [MSG.pack(ABI["PARTLINK_MSG_SEGMENT"], len(body)) +
                             body], [fd])


def send_gone(d, seg_id):
    d.send(ABI["PARTLINK_MSG_SEGMENT_GONE"], struct.pack("=II", seg_id, 0))


def entry(a, slot):
    base = BAR0 + ABI["PARTLINK_REG_SEG_TABLE"] + slot * ENTRY.size
    raw = b"".join(struct.pack("<I", a.q.readl(base + i))
                   for i in range(0, ENTRY.size, 4))
    name, offset, size, uid, gid, mode, flags, seg_id = ENTRY.unpack(raw)
    return dict(name=name.rstrip(b"\0").decode(), offset=offset, size=size,
                uid=uid, gid=gid, mode=mode, flags=flags, id=seg_id)


def wait_generation(a, want, timeout=10):
    deadline = time.monotonic() + timeout
    while a.readl("SEG_GENERATION") < want:
        assert time.monotonic() < deadline, "the table did not change"
        time.sleep(0.02)


def map_bar2(a):
    a.q.pci_cfg_writel(a.devfn, PCI_BAR2, BAR2 & 0xFFFFFFFF)
    a.q.pci_cfg_writel(a.devfn, PCI_BAR3, BAR2 >> 32)


def fabric_slot(d, port):
    """The fabric segment, mapped, and the offset of a port's slot."""
    f = open(d.segment, "r+b")
    m = mmap.mmap(f.fileno(), FABRIC_SIZE)
    f.close()
    return m, 64 + 512 * port


def make_peer(d, port=PEER, epoch=PEER_EPOCH):
    """Fill a peer's slot as partlinkd would, UP with its epoch."""
    seg, off = fabric_slot(d, port)
    with seg:
        seg[off + 64:off + 72] = struct.pack("=II", ABI["PARTLINK_PORT_UP"],
                                             epoch)


def send_seg_peer(d, shared, port=PEER, epoch=PEER_EPOCH):
    """SEG_PEER with a fresh eventfd as the peer's doorbell; returns it."""
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    body = SEG_PEER.pack(port, epoch, shared)
    socket.send_fds(d.conn, [MSG.pack(ABI["PARTLINK_MSG_SEG_PEER"], len(body)) +
                             body], [efd])
    return efd


def rung(d, port):
    seg, off = fabric_slot(d, port)
    with seg:
        return struct.unpack_from("=Q", seg, off + SLOT_SEG_RUNG)[0]


@pytest.fixture
def daemon():
    with FakeDaemon() as d:
        yield d


def test_no_segments_an_empty_table(daemon):
    a = daemon.adapter()
    assert a.readl("SEG_SLOTS") == SLOTS
    assert a.readl("SEG_GENERATION") == 0
    for slot in range(SLOTS):
        assert entry(a, slot)["flags"] == 0
    assert a.readl("SEG_PENDING") == 0


def test_without_a_window_there_is_no_bar_2(daemon):
    a = daemon.adapter(props=",segment-window=0")
    assert a.readl("SEG_SLOTS") == 0
    # A 64-bit BAR reads back its size mask; an absent one reads 0.
    a.q.pci_cfg_writel(a.devfn, PCI_BAR2, 0xFFFFFFFF)
    assert a.q.pci_cfg_readl(a.devfn, PCI_BAR2) == 0
    fd = memfd(PAGE)
    try:
        send_segment(daemon, 1, "lost", PAGE, fd)
    finally:
        os.close(fd)
    wait_generation(a, 1)
    assert entry(a, 0)["flags"] == 0
    assert a.q.alive()


def test_a_segment_appears_in_the_table_and_the_window(daemon):
    a = daemon.adapter()
    map_bar2(a)
    fd = memfd(4 * PAGE, fill=b"hello from the host")
    try:
        send_segment(daemon, 7, "pipe0", 4 * PAGE, fd, uid=1000, gid=100,
                     mode=0o640)
        wait_generation(a, 1)
        e = entry(a, 0)
        assert e == dict(name="pipe0", offset=0, size=4 * PAGE, uid=1000,
                         gid=100, mode=0o640, flags=PRESENT, id=7)
        assert a.q.memread(BAR2, 19) == b"hello from the host"
        # The guest's writes reach the memory partlinkd handed over.
        a.q.memwrite(BAR2 + PAGE, b"guest was here")
        assert os.pread(fd, 14, PAGE) == b"guest was here"
    finally:
        os.close(fd)


def test_read_only_segment_ignores_guest_writes(daemon):
    a = daemon.adapter()
    map_bar2(a)
    fd = memfd(PAGE, fill=b"constant")
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        send_segment(daemon, 2, "ro", PAGE, ro, flags=READ_ONLY)
        wait_generation(a, 1)
        assert entry(a, 0)["flags"] == PRESENT | READ_ONLY
        a.q.memwrite(BAR2, b"CHANGED!")
        assert a.q.memread(BAR2, 8) == b"constant"
        assert os.pread(fd, 8, 0) == b"constant"
        assert a.q.alive()
    finally:
        os.close(ro)
        os.close(fd)


def test_same_segment_again_updates_owner_and_mode_only(daemon):
    a = daemon.adapter()
    map_bar2(a)
    fd = memfd(PAGE, fill=b"kept")
    try:
        send_segment(daemon, 3, "shared", PAGE, fd, uid=1, mode=0o600)
        wait_generation(a, 1)
        send_segment(daemon, 3, "shared", PAGE, fd, uid=2, gid=3, mode=0o666)
        wait_generation(a, 2)
        e = entry(a, 0)
        assert (e["uid"], e["gid"], e["mode"], e["offset"]) == (2, 3, 0o666, 0)
        assert a.q.memread(BAR2, 4) == b"kept"
    finally:
        os.close(fd)


def test_segments_are_placed_apart_and_gone_leaves_a_hole(daemon):
    a = daemon.adapter()
    map_bar2(a)
    fds = [memfd(PAGE, fill=b"A"), memfd(4 << 20, fill=b"B"),
           memfd(PAGE, fill=b"C")]
    try:
        send_segment(daemon, 0, "a", PAGE, fds[0])
        send_segment(daemon, 1, "b", 4 << 20, fds[1])
        send_segment(daemon, 2, "c", PAGE, fds[2])
        wait_generation(a, 3)
        entries = [entry(a, slot) for slot in range(3)]
        spans = sorted((e["offset"], e["offset"] + e["size"]) for e in entries)
        assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:])), spans
        assert entries[1]["offset"] % (2 << 20) == 0  # huge-page aligned
        for e, byte in zip(entries, b"ABC"):
            assert a.q.memread(BAR2 + e["offset"], 1) == bytes([byte])

        send_gone(daemon, 1)
        wait_generation(a, 4)
        assert entry(a, 1)["flags"] == 0
        hole = BAR2 + entries[1]["offset"]
        assert a.q.memread(hole, 4) == b"\xff" * 4
        a.q.memwrite(hole, b"lost")
        assert os.pread(fds[1], 4, 0) == b"B\0\0\0"
        # Until the driver says it applied generation 4, neither the slot
        # nor the range goes to another segment: a stale mapping would
        # reach it.
        send_segment(daemon, 9, "d", PAGE, fds[1])
        wait_generation(a, 5)
        d = entry(a, 3)
        assert d["name"] == "d" and entry(a, 1)["flags"] == 0
        assert not entries[1]["offset"] <= d["offset"] < \
            entries[1]["offset"] + entries[1]["size"]
        a.writel("SEG_ACK", 5)
        send_segment(daemon, 10, "e", 4 << 20, fds[1])
        wait_generation(a, 6)
        assert entry(a, 1)["name"] == "e"
        assert entry(a, 1)["offset"] == entries[1]["offset"]
    finally:
        for fd in fds:
            os.close(fd)


def test_an_ack_from_the_future_is_refused(daemon):
    a = daemon.adapter()
    fd = memfd(PAGE)
    try:
        send_segment(daemon, 1, "a", PAGE, fd)
        wait_generation(a, 1)
        before = a.readl("BAD_ACCESS")
        a.writel("SEG_ACK", 2)
        assert a.readl("BAD_ACCESS") == before + 1
        send_gone(daemon, 1)
        wait_generation(a, 2)
        send_segment(daemon, 2, "b", PAGE, fd)
        wait_generation(a, 3)
        assert entry(a, 1)["name"] == "b"  # slot 0 is still held
    finally:
        os.close(fd)


def test_unsealed_memory_is_not_mapped(daemon):
    """A segment that could shrink would SIGBUS QEMU: left out, said."""
    a = daemon.adapter()
    fd = memfd(PAGE, seal=False)
    try:
        send_segment(daemon, 1, "unsealed", PAGE, fd)
        wait_generation(a, 1)
        assert entry(a, 0)["flags"] == 0
        assert a.q.alive()
        assert not daemon.closed_by_device(timeout=0.2)
    finally:
        os.close(fd)


def test_a_file_smaller_than_the_segment_is_not_mapped(daemon):
    a = daemon.adapter()
    fd = memfd(PAGE)
    try:
        send_segment(daemon, 1, "short", 4 * PAGE, fd)
        wait_generation(a, 1)
        assert entry(a, 0)["flags"] == 0
        assert a.q.alive()
    finally:
        os.close(fd)


@pytest.mark.parametrize("seg_id,name,size,flags,mode", [
    (64, "id", PAGE, 0, 0o600),                 # id beyond the fabric's
    (1, "", PAGE, 0, 0o600),                    # no name
    (1, "x" * 32, PAGE, 0, 0o600),              # not NUL-terminated
    (1, "flags", PAGE, 0x80, 0o600),            # unknown flag
    (1, "mode", PAGE, 0, 0o1000),               # beyond 0777
    (1, "size0", 0, 0, 0o600),                  # empty
    (1, "odd", PAGE + 1, 0, 0o600),             # not whole pages
    (1, "huge", 2 << 30, 0, 0o600),             # beyond PARTLINK_SEG_SIZE_MAX
])
def test_malformed_segment_closes_the_connection(daemon, seg_id, name, size,
                                                 flags, mode):
    a = daemon.adapter()
    fd = memfd(PAGE)
    try:
        body = SEGMENT.pack(seg_id, flags, size, 0, 0, mode, 0,
                            name.encode()[:32].ljust(32, b"x")
                            if len(name) >= 32 else name.encode())
        socket.send_fds(daemon.conn, [MSG.pack(ABI["PARTLINK_MSG_SEGMENT"],
                                               len(body)) + body], [fd])
    finally:
        os.close(fd)
    assert daemon.closed_by_device()
    assert entry(a, 0)["flags"] == 0
    assert a.q.alive()


def test_segment_without_its_fd_or_short_closes_the_connection(daemon):
    a = daemon.adapter()
    body = SEGMENT.pack(1, 0, PAGE, 0, 0, 0o600, 0, b"nofd")
    daemon.send(ABI["PARTLINK_MSG_SEGMENT"], body)
    assert daemon.closed_by_device()
    assert a.q.alive()


def test_every_table_word_reads_and_writes_are_refused(daemon):
    a = daemon.adapter()
    base = BAR0 + ABI["PARTLINK_REG_SEG_TABLE"]
    before = a.readl("BAD_ACCESS")
    for off in range(0, SLOTS * ENTRY.size, 4):
        assert a.q.readl(base + off) == 0
    a.q.writel(base, 0x41414141)
    a.writel("SEG_GENERATION", 5)
    a.writel("SEG_PENDING", 5)
    assert a.readl("BAD_ACCESS") == before + 3
    assert a.readl("SEG_GENERATION") == 0
    assert entry(a, 0)["name"] == ""


def ring(a, val):
    a.writel("SEG_RING", val)
    return a.readl("SEG_RING_STATUS")


def test_ring_reaches_a_sharing_peer_through_its_doorbell(daemon):
    a = daemon.adapter()
    make_peer(daemon)
    fd = memfd(PAGE)
    efd = send_seg_peer(daemon, 1 << 6)
    try:
        send_segment(daemon, 6, "bell", PAGE, fd)
        wait_generation(a, 1)
        assert ring(a, 0 | PEER << PORT_SHIFT) == SEG_ST["OK"]
        assert select.select([efd], [], [], 5)[0], "the peer was not rung"
        assert os.eventfd_read(efd) == 1
        assert rung(daemon, PEER) == 1 << 6
        assert ring(a, 0 | RING_ALL) == SEG_ST["OK"]
        assert os.eventfd_read(efd) == 1
        assert a.readl("SEG_ERRORS") == 0
    finally:
        os.close(fd)
        os.close(efd)


def test_ring_refusals_have_their_status_and_count(daemon):
    a = daemon.adapter()
    make_peer(daemon)
    fds = [memfd(PAGE), memfd(PAGE)]
    efd = send_seg_peer(daemon, 1 << 6)  # shares segment 6, not segment 8
    try:
        send_segment(daemon, 6, "shared", PAGE, fds[0])
        send_segment(daemon, 8, "mine", PAGE, fds[1])
        wait_generation(a, 2)
        assert ring(a, 5) == SEG_ST["BAD_SLOT"]             # empty slot
        assert ring(a, 200) == SEG_ST["BAD_SLOT"]           # beyond the table
        assert ring(a, 1 | PEER << PORT_SHIFT) == SEG_ST["NOT_MEMBER"]
        assert ring(a, 1 | RING_ALL) == SEG_ST["NOT_MEMBER"]
        assert ring(a, 0 | 9 << PORT_SHIFT) == SEG_ST["NOT_MEMBER"]
        assert ring(a, 0 | 3 << PORT_SHIFT) == SEG_ST["NOT_MEMBER"]  # itself
        assert ring(a, 0 | 1 << 20) == SEG_ST["BAD_VALUE"]
        assert ring(a, 0 | RING_ALL | PEER << PORT_SHIFT) == SEG_ST["BAD_VALUE"]
        assert a.readl("SEG_ERRORS") == 8
        assert not select.select([efd], [], [], 0.1)[0]
        # A peer whose slot has moved on (new epoch) is down, not rung.
        make_peer(daemon, epoch=PEER_EPOCH + 1)
        assert ring(a, 0 | PEER << PORT_SHIFT) == SEG_ST["PEER_DOWN"]
        # PEER_DOWN for its epoch forgets it.
        make_peer(daemon)
        daemon.send(ABI["PARTLINK_MSG_PEER_DOWN"],
                    struct.pack("=II", PEER, PEER_EPOCH))
        wait = 0
        while ring(a, 0 | PEER << PORT_SHIFT) != SEG_ST["NOT_MEMBER"]:
            wait += 1
            assert wait < 100
        assert a.q.alive()
    finally:
        for fd in fds:
            os.close(fd)
        os.close(efd)


def test_a_peers_ring_sets_pending_for_the_slot(daemon):
    a = daemon.adapter()
    fds = [memfd(PAGE), memfd(PAGE)]
    try:
        send_segment(daemon, 12, "first", PAGE, fds[0])
        send_segment(daemon, 40, "second", PAGE, fds[1])
        wait_generation(a, 2)
        seg, off = fabric_slot(daemon, daemon.port)
        with seg:
            # Bit 40 for our slot 1, bit 63 for a segment we do not have.
            struct.pack_into("=Q", seg, off + SLOT_SEG_RUNG, 1 << 40 | 1 << 63)
            os.eventfd_write(daemon.doorbell, 1)
            deadline = time.monotonic() + 5
            pending = 0
            while not pending and time.monotonic() < deadline:
                pending = a.readl("SEG_PENDING")
            assert pending == 1 << 1
            assert a.readl("SEG_PENDING") == 0  # reading cleared it
            assert struct.unpack_from("=Q", seg, off + SLOT_SEG_RUNG)[0] == 0
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("body", [
    SEG_PEER.pack(64, 1, 1),        # no such port
    SEG_PEER.pack(3, 1, 1),         # itself
    SEG_PEER.pack(5, 1, 1)[:-1],    # short
])
def test_malformed_seg_peer_closes_the_connection(daemon, body):
    a = daemon.adapter()
    efd = os.eventfd(0)
    try:
        socket.send_fds(daemon.conn, [MSG.pack(ABI["PARTLINK_MSG_SEG_PEER"],
                                               len(body)) + body], [efd])
    finally:
        os.close(efd)
    assert daemon.closed_by_device()
    assert a.q.alive()


def test_seg_peer_sharing_something_needs_a_doorbell(daemon):
    a = daemon.adapter()
    daemon.send(ABI["PARTLINK_MSG_SEG_PEER"], SEG_PEER.pack(5, 1, 1))
    assert daemon.closed_by_device()
    assert a.q.alive()
