"""The hypervisor mailbox (spec section 15), driven over qtest.

A scripted partlinkd (fabric.FakeDaemon) registers the device and then
answers, stays silent, answers late or answers badly, as each test needs.
The test plays the driver: it writes the request window register by
register, writes MBOX_SEND and reads MBOX_STATUS and the answer window.
"""

import os
import struct
import time

import pytest

from abi import ABI
from adapter import BAR0, BAR1, Adapter
from fabric import FakeDaemon, mac_of, mbox_answer
from qtest import Qtest

REQUEST_SIZE = ABI["PARTLINK_MBOX_REQUEST_SIZE"]
ANSWER_SIZE = ABI["PARTLINK_MBOX_ANSWER_SIZE"]
IDLE, BUSY, DONE = (ABI["PARTLINK_MBOX_IDLE"], ABI["PARTLINK_MBOX_BUSY"],
                    ABI["PARTLINK_MBOX_DONE"])
CLAMPED = ABI["PARTLINK_MBOX_CLAMPED"]
APPLIED = ABI["PARTLINK_MBOX_APPLIED"]
UNAVAILABLE = ABI["PARTLINK_MBOX_UNAVAILABLE"]
ANSWER_MSG = ABI["PARTLINK_MSG_MBOX_ANSWER"]
TIMEOUT_NS = ABI["PARTLINK_MBOX_TIMEOUT_MS"] * 1000000
MBOX_VEC = ABI["PARTLINK_VEC_MBOX"]

PCI_CAPABILITY_LIST = 0x34
PCI_CAP_ID_MSIX = 0x11
MSIX_ENABLE = 1 << 15
MSI_ADDR = 0x100000  # guest RAM the MSI-X message is written into
MSI_DATA = 0xC0DE0000


def set_cpu_request(target=b"vm2", value=1500000):
    return struct.pack("<II16s16sq", ABI["PARTLINK_MBOX_OP_SET_CPU"], 0,
                       target, b"", value).ljust(REQUEST_SIZE, b"\0")


def reg_addr(name, offset=0):
    return BAR0 + ABI[f"PARTLINK_REG_{name}"] + offset


def write_request(a, data):
    assert len(data) == REQUEST_SIZE
    for off in range(0, REQUEST_SIZE, 4):
        a.q.writel(reg_addr("MBOX_REQUEST", off),
                   int.from_bytes(data[off:off + 4], "little"))


def read_window(a, name, size):
    return b"".join(a.q.readl(reg_addr(name, off)).to_bytes(4, "little")
                    for off in range(0, size, 4))


def read_request(a):
    return read_window(a, "MBOX_REQUEST", REQUEST_SIZE)


def read_answer(a):
    return read_window(a, "MBOX_ANSWER", ANSWER_SIZE)


def answer_fields(raw):
    """(result, value, reason) of the answer window."""
    result, _, value, reason = struct.unpack("<IIq96s", raw)
    return result, value, reason.split(b"\0")[0].decode()


def wait_status(a, want, timeout=10):
    """The answer comes through QEMU's main loop: poll, as a driver would."""
    deadline = time.monotonic() + timeout
    while True:
        status = a.readl("MBOX_STATUS")
        if status == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"MBOX_STATUS is {status}, expected {want}")


def send(a, data):
    write_request(a, data)
    a.writel("MBOX_SEND", ABI["PARTLINK_MBOX_SEND"])


# MSI-X, as a driver sets it up: find the capability, point a vector at
# guest RAM, enable.  A delivered message is a write of its data there.
def msix_cap(a):
    ptr = a.q.pci_cfg_readl(a.devfn, PCI_CAPABILITY_LIST) & 0xFC
    while ptr:
        header = a.q.pci_cfg_readl(a.devfn, ptr)
        if header & 0xFF == PCI_CAP_ID_MSIX:
            return ptr
        ptr = (header >> 8) & 0xFC
    raise AssertionError("no MSI-X capability")


def msix_table_size(a):
    return (a.q.pci_cfg_readl(a.devfn, msix_cap(a)) >> 16 & 0x7FF) + 1


def msix_enable(a, masked=()):
    """Point every vector at MSI_ADDR + 4 * vector; returns the PBA address."""
    cap = msix_cap(a)
    table, pba = (a.q.pci_cfg_readl(a.devfn, cap + off) for off in (4, 8))
    assert table & 7 == pba & 7 == ABI["PARTLINK_MSIX_BAR"]
    for vec in range(msix_table_size(a)):
        entry = BAR1 + (table & ~7) + 16 * vec
        a.q.writel(entry, MSI_ADDR + 4 * vec)
        a.q.writel(entry + 4, 0)
        a.q.writel(entry + 8, MSI_DATA | vec)
        a.q.writel(entry + 12, 1 if vec in masked else 0)
    a.q.memwrite(MSI_ADDR, bytes(16))
    header = a.q.pci_cfg_readl(a.devfn, cap)
    a.q.pci_cfg_writel(a.devfn, cap, header | MSIX_ENABLE << 16)
    return BAR1 + (pba & ~7)


def msi_written(a, vec):
    return a.q.memread(MSI_ADDR + 4 * vec, 4) == \
        (MSI_DATA | vec).to_bytes(4, "little")


@pytest.fixture
def daemon():
    with FakeDaemon() as d:
        yield d
        if d.q is not None:
            assert d.q.alive(), "QEMU died"


@pytest.fixture
def lone():
    """An adapter with no fabric at all."""
    with Qtest(f"partlink-pci,mac={mac_of(5)},port=5") as q:
        yield Adapter(q, mac_of(5))
        assert q.alive(), "QEMU died"


def test_four_msix_vectors(lone):
    """DATA, LINK, MBOX and SEG."""
    assert msix_table_size(lone) == ABI["PARTLINK_NR_VECTORS"] == 4


def test_mailbox_registers_at_reset(lone):
    assert lone.readl("MBOX_STATUS") == IDLE
    assert read_request(lone) == bytes(REQUEST_SIZE)
    assert read_answer(lone) == bytes(ANSWER_SIZE)
    assert lone.readl("BAD_ACCESS") == 0


def test_request_arrives_as_written_with_increasing_seq(daemon):
    a = daemon.adapter()
    seqs = []
    for i in range(3):
        # Every byte, including fields partlinkd would refuse: the device
        # forwards the request without reading it.
        data = os.urandom(REQUEST_SIZE)
        write_request(a, data)
        assert read_request(a) == data
        assert a.readl("MBOX_STATUS") == (IDLE if i == 0 else DONE)
        a.writel("MBOX_SEND", 1)
        assert a.readl("MBOX_STATUS") == BUSY
        seq, got = daemon.request()
        assert got == data
        seqs.append(seq)
        reply = mbox_answer(APPLIED, i, f"answer {i}".encode())
        daemon.answer(seq, reply)
        wait_status(a, DONE)
        assert read_answer(a) == reply
        assert read_request(a) == data, "sending changed the request window"
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    assert a.readl("BAD_ACCESS") == 0


def test_answer_is_readable(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request(value=3000000))
    seq, _ = daemon.request()
    daemon.answer(seq, mbox_answer(CLAMPED, 2250000,
                                   b"vm2 clamped to its maximum of 2.25 CPUs"))
    wait_status(a, DONE)
    assert answer_fields(read_answer(a)) == (
        CLAMPED, 2250000, "vm2 clamped to its maximum of 2.25 CPUs")
    # Negative values travel too (the field is signed).
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    daemon.answer(seq, mbox_answer(ABI["PARTLINK_MBOX_REFUSED"], -1, b"no"))
    wait_status(a, DONE)
    assert answer_fields(read_answer(a)) == (ABI["PARTLINK_MBOX_REFUSED"], -1,
                                             "no")


def test_unterminated_reason_is_terminated(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    daemon.answer(seq, mbox_answer(APPLIED, 1, b"x" * 96))
    wait_status(a, DONE)
    raw = read_answer(a)
    assert raw[16:111] == b"x" * 95 and raw[111] == 0


def test_msix_vector_fires_on_done(daemon):
    a = daemon.adapter()
    msix_enable(a)
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    assert not msi_written(a, MBOX_VEC), "interrupt before the answer"
    daemon.answer(seq, mbox_answer(APPLIED))
    wait_status(a, DONE)
    assert msi_written(a, MBOX_VEC)
    # Only the MBOX vector; and no DRIVER_OK or IRQ_CTRL bit was needed.
    assert not msi_written(a, ABI["PARTLINK_VEC_DATA"])
    assert not msi_written(a, ABI["PARTLINK_VEC_LINK"])
    assert a.readl("STATUS") == 0 and a.readl("IRQ_CTRL") == 0


def test_masked_msix_vector_is_left_pending(daemon):
    a = daemon.adapter()
    pba = msix_enable(a, masked=(MBOX_VEC,))
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    assert a.q.readl(pba) == 0
    daemon.answer(seq, mbox_answer(APPLIED))
    wait_status(a, DONE)
    assert a.q.readl(pba) == 1 << MBOX_VEC
    assert not msi_written(a, MBOX_VEC)


def test_device_answer_fires_the_vector_too(lone):
    msix_enable(lone)
    send(lone, set_cpu_request())
    assert lone.readl("MBOX_STATUS") == DONE
    assert msi_written(lone, MBOX_VEC)


def test_no_interrupt_without_msix(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    daemon.answer(seq, mbox_answer(APPLIED))
    wait_status(a, DONE)
    assert a.q.memread(MSI_ADDR, 16) == bytes(16)


def test_busy_refuses_request_writes_and_send(daemon):
    a = daemon.adapter()
    data = set_cpu_request()
    send(a, data)
    seq, _ = daemon.request()
    for off in (0, 4, REQUEST_SIZE - 4):
        a.q.writel(reg_addr("MBOX_REQUEST", off), 0xFFFFFFFF)
    a.writel("MBOX_SEND", 1)
    assert a.readl("BAD_ACCESS") == 4
    assert read_request(a) == data
    assert a.readl("MBOX_STATUS") == BUSY
    assert daemon.nothing_sent(), "a second request went out while busy"
    reply = mbox_answer(APPLIED, 7, b"ok")
    daemon.answer(seq, reply)
    wait_status(a, DONE)
    assert read_answer(a) == reply
    # DONE is not BUSY: the next request may be written and sent.
    write_request(a, bytes(REQUEST_SIZE))
    assert a.readl("BAD_ACCESS") == 4


@pytest.mark.parametrize("value", [0, 2, 0xFFFFFFFF, 0x101])
def test_send_value_other_than_1_is_a_bad_access(daemon, value):
    a = daemon.adapter()
    write_request(a, set_cpu_request())
    a.writel("MBOX_SEND", value)
    assert a.readl("BAD_ACCESS") == 1
    assert a.readl("MBOX_STATUS") == IDLE
    assert daemon.nothing_sent()


def test_narrow_and_wide_accesses_are_rejected(daemon):
    a = daemon.adapter()
    q = a.q
    data = set_cpu_request()
    write_request(a, data)
    q.writeb(reg_addr("MBOX_REQUEST"), 0xFF)
    q.writew(reg_addr("MBOX_REQUEST", 6), 0xFFFF)
    q.command(f"writeq {reg_addr('MBOX_REQUEST', 8):#x} 0xffffffffffffffff")
    q.writeb(reg_addr("MBOX_SEND"), 1)
    q.writew(reg_addr("MBOX_SEND"), 1)
    q.command(f"writeq {reg_addr('MBOX_SEND'):#x} 1")
    assert q.readb(reg_addr("MBOX_REQUEST")) == 0
    assert q.readw(reg_addr("MBOX_STATUS")) == 0
    assert int(q.command(f"readq {reg_addr('MBOX_REQUEST'):#x}"), 16) == 0
    assert a.readl("BAD_ACCESS") == 9
    assert read_request(a) == data
    assert a.readl("MBOX_STATUS") == IDLE
    assert daemon.nothing_sent()


def test_read_only_write_only_and_reserved(lone):
    lone.q.writel(reg_addr("MBOX_ANSWER"), 0x12345678)
    lone.q.writel(reg_addr("MBOX_ANSWER", ANSWER_SIZE - 4), 0x12345678)
    lone.writel("MBOX_STATUS", DONE)
    assert lone.readl("MBOX_SEND") == 0
    assert lone.q.readl(reg_addr("MBOX_STATUS", 4)) == 0
    lone.q.writel(reg_addr("MBOX_STATUS", 8), 1)
    assert lone.readl("BAD_ACCESS") == 6
    assert read_answer(lone) == bytes(ANSWER_SIZE)
    assert lone.readl("MBOX_STATUS") == IDLE


def test_no_fabric_answers_unavailable_at_once(lone):
    send(lone, set_cpu_request())
    assert lone.readl("MBOX_STATUS") == DONE
    result, value, reason = answer_fields(read_answer(lone))
    assert (result, value) == (UNAVAILABLE, 0)
    assert "not on the fabric" in reason
    # and again: every request gets its answer
    send(lone, set_cpu_request())
    assert lone.readl("MBOX_STATUS") == DONE
    assert lone.readl("BAD_ACCESS") == 0


def test_not_registered_answers_unavailable_at_once(daemon):
    """Connected, HELLO sent, but partlinkd never welcomed the device."""
    a = daemon.adapter(welcome=False)
    send(a, set_cpu_request())
    assert a.readl("MBOX_STATUS") == DONE
    result, _, reason = answer_fields(read_answer(a))
    assert result == UNAVAILABLE and "not on the fabric" in reason
    assert daemon.nothing_sent(), "an unregistered device sent a request"


def test_silent_daemon_times_out_on_the_virtual_clock(daemon):
    a = daemon.adapter()
    msix_enable(a)
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    a.q.command(f"clock_step {TIMEOUT_NS - 1000}")
    assert a.readl("MBOX_STATUS") == BUSY
    assert not msi_written(a, MBOX_VEC)
    a.q.command("clock_step 1000")
    assert a.readl("MBOX_STATUS") == DONE
    assert msi_written(a, MBOX_VEC)
    result, value, reason = answer_fields(read_answer(a))
    assert (result, value) == (UNAVAILABLE, 0)
    assert "did not answer" in reason
    # The late answer is stale.  The answer to the next request follows it
    # in the same write: if the late one had been taken, the window would
    # hold it and the next one would be dropped.
    send(a, set_cpu_request())
    seq2, _ = daemon.request()
    assert seq2 > seq
    late, good = mbox_answer(APPLIED, 1, b"late"), mbox_answer(APPLIED, 2, b"ok")
    daemon.conn.sendall(
        struct.pack("=II", ANSWER_MSG, 8 + ANSWER_SIZE) +
        struct.pack("=II", seq, 0) + late +
        struct.pack("=II", ANSWER_MSG, 8 + ANSWER_SIZE) +
        struct.pack("=II", seq2, 0) + good)
    wait_status(a, DONE)
    assert read_answer(a) == good


def test_answer_in_time_stops_the_timer(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    reply = mbox_answer(APPLIED, 5, b"ok")
    daemon.answer(seq, reply)
    wait_status(a, DONE)
    a.q.command(f"clock_step {2 * TIMEOUT_NS}")
    assert read_answer(a) == reply


def test_stale_seq_answer_is_dropped(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    wrong, right = mbox_answer(APPLIED, 1, b"stale"), mbox_answer(APPLIED, 2, b"ok")
    for stale in (seq - 1, seq + 1, 0xFFFFFFFF):
        daemon.answer(stale, wrong)
    daemon.answer(seq, right)
    wait_status(a, DONE)
    assert read_answer(a) == right
    # An answer to a request already answered changes nothing either.
    daemon.answer(seq, wrong)
    send(a, set_cpu_request())
    seq2, _ = daemon.request()
    daemon.answer(seq2, right)
    wait_status(a, DONE)
    assert read_answer(a) == right


@pytest.mark.parametrize("length", [0, 8, 8 + ANSWER_SIZE - 1,
                                    8 + ANSWER_SIZE + 1, 4096])
def test_wrong_length_answer_closes_the_connection(daemon, length):
    """Like any malformed message from partlinkd: a protocol error, the
    device closes the connection, and the request in flight is answered
    UNAVAILABLE at once instead of after the timeout."""
    a = daemon.adapter()
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    payload = (struct.pack("=II", seq, 0) + mbox_answer(APPLIED, 1, b"bad"))
    daemon.send(ANSWER_MSG, payload.ljust(length, b"\0")[:length])
    assert daemon.closed_by_device()
    wait_status(a, DONE)
    result, _, reason = answer_fields(read_answer(a))
    assert result == UNAVAILABLE and "connection to partlinkd closed" in reason
    assert a.q.alive()
    with open(a.q.out_path) as out:
        assert "malformed MBOX_ANSWER" in out.read()
    # Without partlinkd the next request is answered by the device at once.
    send(a, set_cpu_request())
    assert a.readl("MBOX_STATUS") == DONE
    result, _, reason = answer_fields(read_answer(a))
    assert result == UNAVAILABLE and "not connected" in reason


def test_daemon_gone_while_busy_answers_unavailable(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    daemon.request()
    daemon.conn.close()
    daemon.conn = None
    wait_status(a, DONE)
    result, _, reason = answer_fields(read_answer(a))
    assert result == UNAVAILABLE and "connection to partlinkd closed" in reason


def test_daemon_not_reading_answers_unavailable_at_once(daemon):
    """partlinkd stopped (SIGSTOP, a debugger) reads nothing, and once its
    socket buffer is full a request cannot go out.  The device writes from
    the vCPU thread under the BQL: it must not wait for room, which would
    stall the whole VM, but answer UNAVAILABLE at once.  The requests that
    did go out arrive whole once partlinkd reads again, and the connection
    goes on."""
    a = daemon.adapter()
    # A QEMU that answers no qtest command for 10 s has stalled: fail then
    # instead of waiting on it.
    a.q.sock.settimeout(10)
    data = os.urandom(REQUEST_SIZE)
    write_request(a, data)
    # From here the fake daemon reads nothing.  Each request that goes out
    # stays in the socket until the kernel takes no more: on a unix stream
    # socket, a few hundred by the sender's SO_SNDBUF (the receiver's
    # SO_RCVBUF plays no part), and each is taken whole or not at all.
    deadline = time.monotonic() + 60
    queued = 0
    while True:
        a.writel("MBOX_SEND", 1)
        if a.readl("MBOX_STATUS") == DONE:
            break
        queued += 1
        a.q.command(f"clock_step {TIMEOUT_NS}")
        assert a.readl("MBOX_STATUS") == DONE
        assert time.monotonic() < deadline, \
            f"the socket took {queued} requests and is not full yet"
    assert queued > 0, "the first request did not go out"
    not_reading = (UNAVAILABLE, 0, "partlinkd is not reading its socket")
    assert answer_fields(read_answer(a)) == not_reading
    # Every further request too, at once: no timer, no waiting for room.
    for _ in range(3):
        a.writel("MBOX_SEND", 1)
        assert a.readl("MBOX_STATUS") == DONE
        assert answer_fields(read_answer(a)) == not_reading
    assert "return" in a.q.qmp("query-status"), "the main loop is stuck"
    assert a.readl("BAD_ACCESS") == 0

    # partlinkd reads again: the requests that went out, whole and in order,
    # and none of those refused.
    seqs = []
    for _ in range(queued):
        seq, got = daemon.request()
        assert got == data
        seqs.append(seq)
    assert seqs == list(range(seqs[0], seqs[0] + queued)), seqs
    assert daemon.nothing_sent(), "a refused request went out after all"
    # Same connection, still framed: the next request goes out and is
    # answered.
    data = set_cpu_request(target=b"vm3")
    send(a, data)
    seq, got = daemon.request()
    assert got == data and seq > seqs[-1]
    reply = mbox_answer(APPLIED, 1, b"ok")
    daemon.answer(seq, reply)
    wait_status(a, DONE)
    assert read_answer(a) == reply


def test_driver_reset_while_busy(daemon):
    a = daemon.adapter()
    msix_enable(a)
    send(a, set_cpu_request())
    old, _ = daemon.request()
    a.writel("STATUS", 0)
    assert a.readl("MBOX_STATUS") == IDLE
    assert read_request(a) == bytes(REQUEST_SIZE)
    assert read_answer(a) == bytes(ANSWER_SIZE)
    # Idle again: the window takes writes, SEND takes a new request.
    data = set_cpu_request(target=b"vm3")
    send(a, data)
    new, got = daemon.request()
    assert new > old and got == data
    # The answer to the request from before the reset is dropped, also
    # when it comes while the new one is in flight.
    stale, good = mbox_answer(APPLIED, 1, b"before reset"), mbox_answer(APPLIED, 2, b"ok")
    daemon.answer(old, stale)
    daemon.answer(new, good)
    wait_status(a, DONE)
    assert read_answer(a) == good
    assert a.readl("BAD_ACCESS") == 0
    # The timer of the request before the reset is gone as well.
    a.q.command(f"clock_step {2 * TIMEOUT_NS}")
    assert read_answer(a) == good


def test_driver_reset_while_idle_and_done(daemon):
    a = daemon.adapter()
    write_request(a, os.urandom(REQUEST_SIZE))
    a.writel("STATUS", 0)
    assert read_request(a) == bytes(REQUEST_SIZE)
    send(a, set_cpu_request())
    seq, _ = daemon.request()
    daemon.answer(seq, mbox_answer(APPLIED, 9, b"ok"))
    wait_status(a, DONE)
    a.writel("STATUS", 0)
    assert a.readl("MBOX_STATUS") == IDLE
    assert read_answer(a) == bytes(ANSWER_SIZE)


def test_system_reset_while_busy(daemon):
    a = daemon.adapter()
    send(a, set_cpu_request())
    old, _ = daemon.request()
    a.q.command("outb 0xcf9 0x6")
    for _ in range(1000):
        if a.q.pci_cfg_readl(a.devfn, 0x10) & ~0xF == 0:
            break
    else:
        pytest.fail("system reset did not happen")
    a = Adapter(a.q, a.mac)  # firmware's job: BARs and bus mastering again
    assert a.readl("MBOX_STATUS") == IDLE
    assert read_request(a) == bytes(REQUEST_SIZE)
    send(a, set_cpu_request())
    new, _ = daemon.request()
    assert new > old
    good = mbox_answer(APPLIED, 2, b"ok")
    daemon.answer(old, mbox_answer(APPLIED, 1, b"before reset"))
    daemon.answer(new, good)
    wait_status(a, DONE)
    assert read_answer(a) == good
