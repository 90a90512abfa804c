#!/usr/bin/python3
"""A seeded, reproducible random qtest fuzzer of partlink-pci (issue 12).

Two qtest QEMUs, A (port 1) and B (port 2), on a real partlinkd fabric
(fabric.Fabric), so that the data path runs for real: routing, RX claim,
the one copy.  The fuzzer plays both drivers, badly.

Each case is a short random sequence of operations drawn from
random.Random(f"{seed}:{case}"), so any case reruns alone:

* register writes and reads of every BAR 0 offset, with wrong widths
  (writeb/w/l/q, readb/w/l/q) and biased values (0, ~0, ring-ish
  addresses, sizes around 16..4096, notify addresses);
* STATUS transitions: reset, ACKNOWLEDGE, DRIVER_OK with good and bad
  rings and notify areas, FAILED, garbage; whole bring-ups;
* TX descriptors: good frames that route to the peer (unicast, broadcast),
  spoofed and unroutable ones, chains, offload fields, hostile addresses
  and lengths, unterminated and overlong chains, garbage;
* RX descriptors posted by the receiver, good and hostile (outside RAM,
  below 1 MiB, over its own ring, tiny, huge, pointing at canaries);
* writes into the notify area (tx_event, irq_armed, garbage);
* the PCI command register (bus master on and off), MSI-X enable, mask
  and table entries, a rare machine reset;
* doorbell storms (many TX_KICK writes), mailbox requests.

Between cases both devices are reset (STATUS = 0); the QEMUs are reused
and restarted only after a failure.

The oracle, after every case (both devices reset first):

* both QEMUs and partlinkd alive, qtest still answering, MAGIC readable,
  both links up with their peer (an ASan report aborts QEMU: a failure);
* canaries: regions of both guests' RAM that the devices must never
  write (below 1 MiB, around the rings and the notify area, the TX
  buffers, guards after every posted RX buffer and after each ring, the
  end of RAM, ...) must read back as painted, except where a ring, a
  notify area or an RX buffer the device may fill overlaps them;
* quiescence: after a STATUS = 0 in the middle of a case, the ended
  configuration's rings, notify area and some of its RX buffers are
  painted; no device, this one or the peer, may write there any more;
* entries handed over once and handed back: a valid status, TX entries
  as written, RX lengths within the posted buffer and refused entries
  with len 0; every RX packet ends within 32 entries and the ring, holds
  14..65536 bytes, and carries the sender's MAC as source and ours (or a
  group) as destination, whatever the sender's driver wrote;
* summed over the fabric, packet copies equal packets received;
* registers: STATUS holds only its bits and DRIVER_OK only with rings in
  RAM; identity registers read as documented; 8/16-bit and unaligned
  accesses read 0.

Usage:
    fuzz_partlink.py --seed 1 --cases 100000 --asan     (make fuzz SEED=1 N=100000)
    fuzz_partlink.py --seed 1 --case 4242 [--repeat 20] [--verbose]

Timing (the TX thread, the peer's copies) is not reproducible; the
operations are.  A failure report (ops, qtest lines, QEMU output) goes to
--report-dir.
"""

import argparse
import base64
import os
import random
import socket
import struct
import sys
import time
import traceback
from bisect import bisect_right
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(HERE.parent), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import qtest  # noqa: E402
from abi import ABI  # noqa: E402
from adapter import (BAR0, BAR1, COUNTERS, DESC, PCI_COMMAND, Adapter, desc)  # noqa: E402
from fabric import PARTLINKD, Fabric, mac_of  # noqa: E402

ASAN_QEMU = REPO / "build" / "qemu-asan" / "qemu-system-x86_64"
ASAN_OPTIONS = "detect_leaks=0:abort_on_error=1"
SCRIPT = Path(__file__).resolve()

RAM_SIZE = 64 << 20
FLOOR = ABI["PARTLINK_RAM_FLOOR"]
OWN = ABI["PARTLINK_DESC_OWN"]
MORE = ABI["PARTLINK_DESC_MORE"]
NEEDS_CSUM = ABI["PARTLINK_DESC_NEEDS_CSUM"]
DATA_VALID = ABI["PARTLINK_DESC_DATA_VALID"]
ACK = ABI["PARTLINK_STATUS_ACKNOWLEDGE"]
DRIVER_OK = ABI["PARTLINK_STATUS_DRIVER_OK"]
FAILED = ABI["PARTLINK_STATUS_FAILED"]
F_CSUM = ABI["PARTLINK_F_CSUM"]
F_GSO = ABI["PARTLINK_F_GSO"]
NOTIFY_SIZE = ABI["PARTLINK_NOTIFY_SIZE"]
MAX_PACKET = ABI["PARTLINK_MAX_PACKET"]
MAX_SEGS = ABI["PARTLINK_MAX_SEGS"]
RX_BUF_MIN = ABI["PARTLINK_RX_BUF_MIN"]
ST_OK = ABI["PARTLINK_ST_OK"]
ST_MAX = ABI["PARTLINK_ST_LINK_DOWN"]
LINK_UP_1 = ABI["PARTLINK_LINK_UP"] | 1 << ABI["PARTLINK_LINK_PEERS_SHIFT"]
R = {name[len("PARTLINK_REG_"):]: val for name, val in ABI.items()
     if name.startswith("PARTLINK_REG_") and not name.endswith(("_BAR", "_BAR_SIZE"))}
REG_OFFSETS = sorted(set(R.values()))
STATUS_NAMES = {val: name[len("PARTLINK_ST_"):] for name, val in ABI.items()
                if name.startswith("PARTLINK_ST_")}

PCI_CAPABILITY_LIST = 0x34
PCI_CAP_ID_MSIX = 0x11
CMD_MEMORY = 0x2
CMD_MASTER = 0x4
APIC_MSI = 0xFEE00000

# Guest RAM layout, the same in both guests.  Rings and notify areas go in
# one of the LAYOUTS; TX frames in TX_AREA; RX buffers one per 64 KiB slot
# of RX_AREA; MSI-X messages land in MSI_AREA.
HOME_TX, HOME_RX, HOME_NOTIFY = 0x200000, 0x210000, 0x220000
MSI_AREA = 0x240000
TX_AREA, TX_AREA_SIZE = 0x300000, 0x18000
RX_AREA, RX_SLOT, RX_SLOTS = 0x800000, 0x10000, 256
FREE_CANARY = 0x2000000
PATTERN = bytes([0xA5, 0x5A, 0xC3, 0x3C])
# Painted at the start of every case; the devices must never write there
# unless a ring, notify area or RX buffer of the case overlaps them.
FIXED_CANARIES = [
    (0x90000, 0x1000),            # below 1 MiB: not even mapped by the device
    (FLOOR, 0x1000),              # the first page it maps
    (HOME_TX - 0x1000, 0x1000),   # before the home TX ring
    (HOME_NOTIFY - 0x1000, 0x1000),
    (HOME_NOTIFY + NOTIFY_SIZE, 0x1000 - NOTIFY_SIZE),
    (MSI_AREA + 0x100, 0xF00),
    (0x25F000, 0x1000),           # before the "tight" layout
    (TX_AREA, TX_AREA_SIZE),      # TX frames: the device only reads them
    (RX_AREA - 0x1000, 0x1000),
    (RX_AREA + RX_SLOT * RX_SLOTS, 0x1000),
    (FREE_CANARY, 0x1000),
    (RAM_SIZE - 0x1000, 0x1000),  # the end of RAM
]
# Addresses that hostile descriptors point at: canaries first of all.
HOSTILE_ADDRS = [
    0, 0x1000, 0x90000, FLOOR - 0x100, FLOOR, TX_AREA, TX_AREA + 0x1234,
    FREE_CANARY, FREE_CANARY + 0x10, RAM_SIZE - 0x800, RAM_SIZE - 100,
    RAM_SIZE - 14, RAM_SIZE, RAM_SIZE + 0x1000, 0xFE000000, 0xFEE00000,
    0xFFFFFFFF, 1 << 32, (1 << 32) + TX_AREA, 0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFF800, 0xFFFFFFFFFFFFFF00, 0xFFFFFFFFFFFFFFFF,
]
RING_SIZES = [16, 16, 32, 64, 128, 256]
ODD_SIZES = [0, 1, 2, 8, 15, 17, 24, 31, 33, 1000, 2048, 4095, 4096, 4097,
             8192, 0x10000, 0x80000000, 0xFFFFFFFF]
RX_LENS = [256, 300, 1024, 1514, 2048, 2048, 4096, 9018, 16384, 65536]


class QemuDied(Exception):
    """A QEMU, partlinkd or the qtest connection is gone: a failure."""


class OracleFailure(Exception):
    """The devices did something the spec forbids."""


def hexdump_diff(addr, want, got, limit=4):
    out, shown, i = [], 0, 0
    while i < len(want) and shown < limit:
        if want[i] != got[i]:
            j = i
            while j < len(want) and want[j] != got[j] and j - i < 32:
                j += 1
            out.append(f"    {addr + i:#x}: expected {bytes(want[i:j]).hex()} "
                       f"got {bytes(got[i:j]).hex()}")
            shown += 1
            i = j
        else:
            i += 1
    return "\n".join(out)


def split_access(off, width):
    """The accesses QEMU's memory core makes of one qtest access to BAR 0
    (memory_access_size: valid sizes 1..8, no unaligned accesses): a list
    of (offset, size, byte offset in the data)."""
    out, pos = [], 0
    while pos < width:
        a = off + pos
        mx = 8
        align = a & -a
        if align and align < mx:
            mx = align
        n = min(width - pos, mx)
        n = 1 << (n.bit_length() - 1)
        out.append((a, n, pos))
        pos += n
    return out


class Conn:
    """Pipelined qtest: writes are queued and answered in batches; a
    query flushes.  Every line of a case is kept for the report."""

    def __init__(self, q):
        self.q = q
        self.out = []
        self.trace = []
        self.buf = bytearray()

    def send(self, line):
        self.out.append(line)
        self.trace.append(line)
        if len(self.out) >= 256:
            self.flush()

    def flush(self):
        self._exchange()

    def query(self, line):
        return self.queries([line])[0]

    def queries(self, lines):
        self.flush()
        self.out.extend(lines)
        self.trace.extend(lines)
        return self._exchange()

    def _exchange(self):
        lines, self.out = self.out, []
        if not lines:
            return []
        try:
            self.q.sock.sendall(("\n".join(lines) + "\n").encode())
            return [self._reply(line) for line in lines]
        except socket.timeout:
            raise QemuDied(f"qtest did not answer within 30 s (hung?) after "
                           f"{lines[-1][:80]!r}") from None
        except OSError as e:
            raise QemuDied(f"qtest connection: {e}{self.death()}") from None

    def death(self):
        """Why QEMU went away, if it did: its exit status, ASan's verdict."""
        try:
            self.q.proc.wait(timeout=10)
        except Exception:
            return ""
        out = Path(self.q.out_path).read_text(errors="replace")
        why = [line.strip() for line in out.splitlines()
               if "ERROR: AddressSanitizer" in line or line.startswith("SUMMARY:")
               or "runtime error" in line][:3]
        return f" (QEMU exit status {self.q.proc.returncode}" + \
            (": " + "; ".join(why) if why else "") + ")"

    def _reply(self, line):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                reply = self.buf[:nl].decode()
                del self.buf[:nl + 1]
                if reply.startswith("IRQ "):
                    continue
                break
            try:
                chunk = self.q.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise QemuDied(f"QEMU closed the qtest socket after {line[:80]!r}"
                               f"{self.death()}")
            self.buf += chunk
        if not reply.startswith("OK"):
            raise OracleFailure(f"qtest refused {line[:80]!r}: {reply!r}")
        return reply[3:].strip()

    # plain helpers
    def writel(self, addr, val):
        self.send(f"writel {addr:#x} {val & 0xFFFFFFFF:#x}")

    def readl(self, addr):
        return int(self.query(f"readl {addr:#x}"), 16)

    def memwrite(self, addr, data):
        if data:
            self.send(f"b64write {addr:#x} {len(data):#x} "
                      f"{base64.b64encode(bytes(data)).decode()}")

    def memread(self, addr, size):
        return base64.b64decode(self.query(f"b64read {addr:#x} {size:#x}"))

    def memreads(self, ranges):
        replies = self.queries([f"b64read {a:#x} {n:#x}" for a, n in ranges])
        return [base64.b64decode(r) for r in replies]

    def cfg_addr(self, devfn, off):
        self.send(f"outl 0xcf8 {0x80000000 | devfn << 8 | (off & 0xFC):#x}")

    def cfg_writel(self, devfn, off, val):
        self.cfg_addr(devfn, off)
        self.send(f"outl 0xcfc {val & 0xFFFFFFFF:#x}")

    def cfg_readl(self, devfn, off):
        self.cfg_addr(devfn, off)
        return int(self.query("inl 0xcfc"), 16)


class Region:
    """A checked range of guest RAM and what it must hold."""

    __slots__ = ("start", "want", "dirty", "since")

    def __init__(self, start, data, since=0):
        self.start = start
        self.want = bytearray(data)
        self.dirty = False          # no longer all paint: repaint it
        self.since = since          # painted then: what was allowed before is not


class Shadow:
    """Checked regions of one guest's RAM: fixed ones, painted once and
    repainted when something wrote into them, and per-case guards."""

    PAGE = 16

    def __init__(self):
        self.fixed = []
        self.guards = []
        self.index = {}             # addr >> PAGE -> [Region]
        for addr, n in FIXED_CANARIES:
            for a in range(addr, addr + n, 0x2000):
                r = Region(a, pattern(min(0x2000, addr + n - a)))
                r.dirty = True
                self._add(r, self.fixed)

    def _add(self, r, where):
        where.append(r)
        for page in range(r.start >> self.PAGE, (r.start + len(r.want) - 1 >> self.PAGE) + 1):
            self.index.setdefault(page, []).append(r)

    def regions(self):
        return self.fixed + self.guards

    def new_case(self):
        """Forget the guards of the last case; the fixed regions to repaint."""
        for r in self.guards:
            for page in range(r.start >> self.PAGE, (r.start + len(r.want) - 1 >> self.PAGE) + 1):
                self.index[page].remove(r)
        self.guards = []
        stale = [r for r in self.fixed if r.dirty]
        for r in stale:
            r.want[:] = pattern(len(r.want))
            r.dirty = False
        return stale

    def add_guard(self, start, data, since=0):
        self._add(Region(start, data, since), self.guards)

    def write(self, addr, data):
        end = addr + len(data)
        seen = set()
        for page in range(addr >> self.PAGE, (end - 1 >> self.PAGE) + 1):
            for r in self.index.get(page, ()):
                if id(r) in seen:
                    continue
                seen.add(id(r))
                lo, hi = max(addr, r.start), min(end, r.start + len(r.want))
                if lo < hi:
                    r.want[lo - r.start:hi - r.start] = data[lo - addr:hi - addr]
                    r.dirty = True


def pattern(n):
    return (PATTERN * (n // 4 + 1))[:n]


def overlaps(a, alen, b, blen):
    return a < b + blen and b < a + alen


class Config:
    """Rings and notify area the device accepted at a DRIVER_OK."""

    def __init__(self, regs, seq, life_start):
        (tx_lo, tx_hi, self.tx_size, rx_lo, rx_hi, self.rx_size,
         n_lo, n_hi, self.features) = regs
        self.tx = tx_lo | tx_hi << 32
        self.rx = rx_lo | rx_hi << 32
        self.notify = n_lo | n_hi << 32
        self.seq = seq                  # writes after this are during it
        self.life_start = life_start    # ... and after its last reset
        self.ended = None

    def ranges(self):
        return [(self.tx, 32 * self.tx_size), (self.rx, 32 * self.rx_size),
                (self.notify, NOTIFY_SIZE)]

    def __repr__(self):
        return (f"tx={self.tx:#x}/{self.tx_size} rx={self.rx:#x}/{self.rx_size} "
                f"notify={self.notify:#x} features={self.features:#x}")


class Side:
    """One adapter and what the fuzzer knows of its guest."""

    def __init__(self, name, adapter, port, peer_port):
        self.name = name
        self.q = adapter.q
        self.devfn = adapter.devfn
        self.port = port
        self.mac = bytes.fromhex(mac_of(port).replace(":", ""))
        self.peer_mac = bytes.fromhex(mac_of(peer_port).replace(":", ""))
        self.peer_port = peer_port
        self.conn = Conn(self.q)
        self.msix_cap = self._find_msix()
        self.dirty_descs = []
        self.counters = None
        self.shadow = Shadow()

    def _find_msix(self):
        ptr = self.conn.cfg_readl(self.devfn, PCI_CAPABILITY_LIST) & 0xFC
        while ptr:
            header = self.conn.cfg_readl(self.devfn, ptr)
            if header & 0xFF == PCI_CAP_ID_MSIX:
                return ptr
            ptr = (header >> 8) & 0xFC
        raise RuntimeError("partlink-pci has no MSI-X capability")

    # --- per case -------------------------------------------------------
    def begin_case(self):
        c = self.conn
        c.trace = []
        self.seq = 0
        self.configs = []
        self.cur = None
        self.last_reset = 0
        self.desc_writes = []       # (seq, addr, 32 bytes)
        self.raw_writes = []        # (seq, addr, len) of anything else
        self.ending = False         # the case's final reset: rings are checked as they are
        self.layout = (HOME_TX, 16, HOME_RX, 16, HOME_NOTIFY)
        self.rx_lens = RX_LENS
        self.features = 0
        self.tx_next = self.rx_next = 0
        self.tx_cursor = 0
        self.queued_tx = []         # (seq, addr) of OWN TX entries written
        # Leave nothing of the last case in RAM that a device could take
        # for a posted buffer: zero every descriptor written then.
        for addr, n in merge_ranges(self.dirty_descs):
            c.memwrite(addr, bytes(n))
        self.dirty_descs = []
        c.cfg_writel(self.devfn, PCI_COMMAND, CMD_MEMORY | CMD_MASTER)
        self.mem_on = True
        c.cfg_writel(self.devfn, self.msix_cap, 0)  # MSI-X off, unmasked
        c.writel(BAR0 + R["STATUS"], 0)
        for r in self.shadow.new_case():
            c.memwrite(r.start, r.want)
        c.memwrite(MSI_AREA, bytes(0x100))
        try:
            os.truncate(self.q.log_path, 0)
        except OSError:
            pass

    def paint(self, addr, n, quiet=False):
        """A guard: paint that no device may write over (with quiet: no
        device of a configuration that ended before)."""
        if addr < 0 or addr + n > RAM_SIZE or n <= 0:
            return
        data = pattern(n)
        self.memwrite(addr, data)
        self.shadow.add_guard(addr, data, self.seq if quiet else 0)

    def paint_ended(self, cfg):
        """STATUS = 0 completed: "neither this device nor any peer's device
        touches" the rings, the notify area and the buffers again.  Paint
        them (some of them) to see that nobody does."""
        for addr, n in cfg.ranges():
            self.paint(addr, min(n, 0x1000), quiet=True)
        bufs = []
        for _, addr, e in self.desc_writes:
            baddr, blen, flags = struct.unpack_from("<QIH", e)
            if cfg.rx <= addr < cfg.rx + 32 * cfg.rx_size and flags & OWN and \
                    RX_BUF_MIN <= blen and FLOOR <= baddr and baddr + blen <= RAM_SIZE:
                bufs.append(baddr)
        for baddr in sorted(set(bufs[-8:])):
            self.paint(baddr, 64, quiet=True)

    def memwrite(self, addr, data, descs=False):
        """A write into guest RAM by the driver (the fuzzer)."""
        self.seq += 1
        self.conn.memwrite(addr, data)
        self.shadow.write(addr, data)
        if not descs:
            self.raw_writes.append((self.seq, addr, len(data)))

    def write_descs(self, addr, entries, ring="tx"):
        data = b"".join(entries)
        self.memwrite(addr, data, descs=True)
        for i, e in enumerate(entries):
            self.desc_writes.append((self.seq, addr + 32 * i, e))
            if ring == "tx" and struct.unpack_from("<H", e, 12)[0] & OWN:
                self.queued_tx.append((self.seq, addr + 32 * i))
        self.dirty_descs.append((addr, len(data)))

    # --- registers --------------------------------------------------------
    def reg_write(self, off, val, width=4):
        """A qtest write of `width` bytes at BAR 0 + off; follows the
        STATUS register through whatever part of it reaches the device."""
        cmd = {1: "writeb", 2: "writew", 4: "writel", 8: "writeq"}[width]
        val &= (1 << 8 * width) - 1
        self.seq += 1
        self.conn.send(f"{cmd} {BAR0 + off:#x} {val:#x}")
        for a, n, pos in split_access(off, width):
            if a == R["STATUS"] and n == 4:
                part = val >> 8 * pos & 0xFFFFFFFF
                if part == 0 and self.mem_on:
                    self.last_reset = self.seq
                self.follow_status()
            elif a == R["DRV_FEATURES"] and n == 4:
                self.features = val >> 8 * pos & 0xFFFFFFFF

    def writel(self, name, val):
        self.reg_write(R[name], val, 4)

    def readl(self, name):
        return self.conn.readl(BAR0 + R[name])

    def follow_status(self):
        """Read STATUS back; on a new DRIVER_OK, read which rings the
        device took (only registers tell the truth after hostile writes)."""
        if not self.mem_on:
            return      # the write went nowhere
        status = self.readl("STATUS")
        if status & ~(ACK | DRIVER_OK | FAILED):
            raise OracleFailure(f"{self.name}: STATUS reads {status:#x}")
        if status & DRIVER_OK and (status & FAILED or not status & ACK):
            raise OracleFailure(f"{self.name}: STATUS reads {status:#x}")
        if not status & DRIVER_OK:
            if self.cur:
                self.cur.ended = self.seq
                if not self.ending:
                    self.paint_ended(self.cur)
            self.cur = None
            return
        if self.cur:
            return
        names = ["TX_RING_LO", "TX_RING_HI", "TX_RING_SIZE", "RX_RING_LO",
                 "RX_RING_HI", "RX_RING_SIZE", "NOTIFY_LO", "NOTIFY_HI",
                 "DRV_FEATURES"]
        regs = [int(v, 16) for v in self.conn.queries(
            [f"readl {BAR0 + R[n]:#x}" for n in names])]
        cfg = Config(regs, self.seq, self.last_reset)
        for a, n in cfg.ranges():
            if a < FLOOR or a + n > RAM_SIZE:
                raise OracleFailure(f"{self.name}: DRIVER_OK accepted {cfg}")
        self.cur = cfg
        self.configs.append(cfg)
        self.tx_next = self.rx_next = 0

    def rings(self):
        """Where the driver believes its rings are: the live ones, or the
        ones it last tried to configure."""
        if self.cur:
            c = self.cur
            return c.tx, c.tx_size, c.rx, c.rx_size, c.notify
        return self.layout

    def set_command(self, cmd):
        self.seq += 1
        self.mem_on = bool(cmd & CMD_MEMORY)
        self.conn.cfg_writel(self.devfn, PCI_COMMAND, cmd)


def ring_in_ram(addr, entries):
    """Whether the driver can write `entries` descriptors at addr."""
    return 0 < entries <= 4096 and FLOOR <= addr and addr + 32 * entries <= RAM_SIZE


def merge_ranges(ranges):
    out = []
    for a, n in sorted(ranges):
        if out and a <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], a + n - out[-1][0])
        else:
            out.append([a, n])
    return out


class Fuzzer:
    """Two QEMUs on a partlinkd fabric, and the cases run against them."""

    def __init__(self, seed, report_dir=None, verbose=False, out=sys.stdout):
        self.seed = seed
        self.report_dir = Path(report_dir) if report_dir else None
        self.verbose = verbose
        self.out = out
        self.fabric = None
        self.failures = []
        self.restarts = 0
        self.stats = Counter()
        self.ops = Counter()

    # --- QEMUs -------------------------------------------------------------
    def start(self):
        self.fabric = Fabric(segments=SEGMENTS)
        try:
            # A lingers after a batch (the default); B never does.
            a = self.adapter(1)
            b = self.adapter(2, props=",tx-linger-us=0")
            self.a = Side("A", a, 1, 2)
            self.b = Side("B", b, 2, 1)
            self.a.peer, self.b.peer = self.b, self.a
            self.sides = (self.a, self.b)
            deadline = time.monotonic() + 15
            while not all(s.readl("LINK") == LINK_UP_1 for s in self.sides):
                if time.monotonic() > deadline:
                    raise RuntimeError("the two adapters did not see each other: "
                                       + self.fabric.log()[-2000:])
                time.sleep(0.02)
            for s in self.sides:
                s.counters = self.read_counters(s)
        except BaseException:
            self.stop()
            raise

    def adapter(self, port, props=""):
        """fabric.adapter(), without qtest's log of every line on stderr
        (gigabytes over a long run): QEMU's stderr is for ASan's report."""
        q = qtest.Qtest(f"partlink-pci,mac={mac_of(port)},port={port},name=vm{port},"
                        f"chardev=fabric{props}",
                        extra_args=["-chardev", f"socket,id=fabric,path={self.fabric.socket},"
                                    "reconnect-ms=100", "-qtest-log", "none"])
        self.fabric.qemus.append(q)
        return Adapter(q, mac_of(port))

    def stop(self):
        if self.fabric:
            try:
                self.fabric.close()
            except Exception:   # a dead QEMU's cleanup must not hide the failure
                pass
            self.fabric = None

    def restart(self):
        """A fresh pair after a failure.  Retried: someone may be
        relinking QEMU right now (make qemu-asan)."""
        self.stop()
        self.restarts += 1
        for attempt in range(6):
            try:
                self.start()
                return
            except Exception as e:
                if attempt == 5:
                    raise
                print(f"fuzz: starting the QEMUs failed ({str(e)[:200]}); again in 10 s",
                      file=self.out, flush=True)
                time.sleep(10)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def read_counters(self, side):
        lines = []
        for i in range(len(COUNTERS)):
            base = BAR0 + R["COUNTERS"] + 8 * i
            lines += [f"readl {base:#x}", f"readl {base + 4:#x}"]
        v = [int(x, 16) for x in side.conn.queries(lines)]
        return {name: v[2 * i] | v[2 * i + 1] << 32 for i, name in enumerate(COUNTERS)}

    # --- running -------------------------------------------------------------
    def run(self, cases, progress=0, max_failures=20, stop_on_failure=False):
        """Run the cases (an iterable of numbers); returns the failures."""
        self.total = len(cases) if hasattr(cases, "__len__") else None
        started = time.monotonic()
        done = 0
        if self.fabric is None:
            self.start()
        for case in cases:
            failure = self.run_case(case)
            done += 1
            if failure:
                self.failures.append(failure)
                self.print_failure(failure)
                if stop_on_failure or len(self.failures) >= max_failures:
                    break
                self.restart()
            if progress and done % progress == 0:
                self.progress(done, started)
        self.elapsed = time.monotonic() - started
        self.done = done
        return self.failures

    def progress(self, done, started):
        el = time.monotonic() - started
        left = ""
        if self.total:
            left = f" of {self.total}, ETA {fmt_time((self.total - done) * el / done)}"
        print(f"fuzz: {done} cases{left}, {done / el:.1f} cases/s, elapsed "
              f"{fmt_time(el)}, failures {len(self.failures)}, "
              f"packets delivered {self.stats['delivered']}", file=self.out, flush=True)

    def check_processes(self):
        for s in self.sides:
            if not s.q.alive():
                raise QemuDied(f"QEMU {s.name} died{s.conn.death()}")
        if self.fabric.daemon.poll() is not None:
            raise QemuDied(f"partlinkd died (exit status {self.fabric.daemon.poll()})")

    def run_case(self, case):
        """Run one case; returns None or a failure dict."""
        rng = random.Random(f"{self.seed}:{case}")
        self.oplog = []
        try:
            for s in self.sides:
                s.begin_case()
            self.case_body(rng)
            self.epilogue()
            return None
        except (QemuDied, OracleFailure, qtest.QtestError) as e:
            return self.failure(case, e)
        except Exception as e:  # a bug of the fuzzer: report it all the same
            return self.failure(case, e, tb=traceback.format_exc())

    def log(self, text):
        self.oplog.append(text)
        if self.verbose:
            print(f"  {text}", file=self.out, flush=True)

    # --- the case --------------------------------------------------------
    def case_body(self, rng):
        a, b = self.sides
        r = rng.random()
        if r < 0.8:
            for s in (a, b):
                self.op_bringup(rng, s, good=True)
        elif r < 0.9:
            self.op_bringup(rng, rng.choice(self.sides), good=True)
        for _ in range(rng.randint(4, 40)):
            side = a if rng.random() < 0.65 else b
            op = rng.choices(OPS, WEIGHTS)[0]
            self.ops[op] += 1
            getattr(self, "op_" + op)(rng, side)
        for s in self.sides:
            s.conn.flush()

    # bring-up ----------------------------------------------------------------
    def choose_layout(self, rng):
        tx_size, rx_size = rng.choice(RING_SIZES), rng.choice(RING_SIZES)
        if rng.random() < 0.02:
            tx_size = rng.choice([4096, tx_size])
            rx_size = rng.choice([4096, rx_size])
        kind = rng.choices(["home", "tight", "top", "floor"], [6, 2, 1, 1])[0]
        if kind == "home":
            tx, rx, notify = HOME_TX, HOME_RX, HOME_NOTIFY
            if tx_size * 32 > HOME_RX - HOME_TX or rx_size * 32 > HOME_NOTIFY - HOME_RX:
                tx, rx, notify = HOME_TX, HOME_TX + 32 * tx_size, HOME_TX - 0x1000
        elif kind == "tight":      # notify, TX and RX back to back
            notify = 0x260000
            tx = notify + NOTIFY_SIZE
            rx = tx + 32 * tx_size
        elif kind == "top":        # ending exactly at the end of RAM
            rx = RAM_SIZE - 32 * rx_size
            tx = rx - 32 * tx_size
            notify = tx - NOTIFY_SIZE
        else:                      # starting exactly at 1 MiB
            tx = FLOOR
            rx = tx + 32 * tx_size
            notify = rx + 32 * rx_size
        return tx, tx_size, rx, rx_size, notify

    def hostile_layout(self, rng, layout):
        tx, tx_size, rx, rx_size, notify = layout
        what = rng.randrange(9)
        if what == 0:
            tx = rng.choice(HOSTILE_ADDRS + [tx + 8, tx + 32, rx, notify])
        elif what == 1:
            rx = rng.choice(HOSTILE_ADDRS + [rx + 8, rx - 32, tx + 32, notify])
        elif what == 2:
            notify = rng.choice(HOSTILE_ADDRS + [notify + 8, tx, rx + 64, 0,
                                                 RAM_SIZE - 128, RAM_SIZE - 256])
        elif what == 3:
            tx_size = rng.choice(ODD_SIZES)
        elif what == 4:
            rx_size = rng.choice(ODD_SIZES)
        elif what == 5:            # rings overlap
            rx = tx + 32 * rng.randrange(max(1, tx_size))
        elif what == 6:
            rx = RAM_SIZE - 32 * rx_size + 64   # runs past the end of RAM
        elif what == 7:
            tx = FLOOR - 64
        else:
            notify = tx + 32 * tx_size - 128    # straddles the TX ring's end
        return tx, tx_size, rx, rx_size, notify

    def op_bringup(self, rng, s, good=None):
        """The driver's handshake, maybe with something wrong in it."""
        if good is None:
            good = rng.random() < 0.7
        layout = self.choose_layout(rng)
        if not good:
            layout = self.hostile_layout(rng, layout)
        tx, tx_size, rx, rx_size, notify = layout
        features = rng.choices([0, F_CSUM, F_CSUM | F_GSO], [3, 2, 4])[0]
        if not good and rng.random() < 0.2:
            features = rng.choice([F_GSO, 0xFF, 0xFFFFFFFF, 4])
        self.log(f"{s.name}: bring-up {'good' if good else 'bad'} "
                 f"tx={tx:#x}/{tx_size} rx={rx:#x}/{rx_size} notify={notify:#x} "
                 f"features={features:#x}")
        s.layout = layout
        # The driver's RX buffer size: mixed, or one size as drivers do.
        s.rx_lens = rng.choice([RX_LENS, [256], [256, 512], [2048], [4096], [MAX_PACKET]])
        s.writel("STATUS", 0)
        s.writel("STATUS", ACK)
        s.writel("DRV_FEATURES", features)
        for name, val in (("TX_RING_LO", tx), ("TX_RING_HI", tx >> 32),
                          ("TX_RING_SIZE", tx_size), ("RX_RING_LO", rx),
                          ("RX_RING_HI", rx >> 32), ("RX_RING_SIZE", rx_size),
                          ("NOTIFY_LO", notify), ("NOTIFY_HI", notify >> 32)):
            s.writel(name, val & 0xFFFFFFFF)
        posted = 0
        if ring_in_ram(notify, NOTIFY_SIZE // 32):
            s.memwrite(notify, bytes(NOTIFY_SIZE))
        if ring_in_ram(tx, tx_size):
            s.write_descs(tx, [bytes(32)] * tx_size, ring=None)
        if ring_in_ram(rx, rx_size):
            s.write_descs(rx, [bytes(32)] * rx_size, ring=None)
            posted = min(256, rng.choice([0, rx_size, rx_size, min(rx_size, 8), rx_size // 2]))
            self.post_rx(rng, s, posted, hostile=0.0 if good else 0.1, start=0)
        if good:
            # Guards right after the rings and the notify area.
            for a, n in ((tx, 32 * tx_size), (rx, 32 * rx_size), (notify, NOTIFY_SIZE)):
                g = a + n
                if not any(overlaps(g, 256, x, y) for x, y in
                           ((tx, 32 * tx_size), (rx, 32 * rx_size), (notify, NOTIFY_SIZE))):
                    s.paint(g, min(256, RAM_SIZE - g))
        s.writel("STATUS", ACK | DRIVER_OK)
        if good and s.mem_on and not s.cur:
            raise OracleFailure(f"{s.name}: a good configuration was refused: "
                                f"STATUS {s.readl('STATUS'):#x}")
        if rng.random() < 0.9:
            s.writel("IRQ_CTRL", ABI["PARTLINK_IRQ_DATA"] | ABI["PARTLINK_IRQ_LINK"])
        s.rx_next = posted

    # RX ----------------------------------------------------------------------
    def rx_buffer(self, rng, s, slot, hostile):
        """A descriptor to post at RX slot `slot`: a good buffer in its
        64 KiB slot of RX_AREA (guarded), or a hostile one."""
        _, _, rx, rx_size, _ = s.rings()
        if rng.random() >= hostile:
            n = rng.choice(s.rx_lens)
            base = RX_AREA + (slot % RX_SLOTS) * RX_SLOT
            off = rng.choice([0, 0, 0, 64, 100]) if n < RX_SLOT else 0
            addr = base + off
            if off + n + 64 <= RX_SLOT:
                s.paint(addr + n, min(256, RX_SLOT - off - n))
            return desc(addr, n, OWN)
        kind = rng.randrange(12)
        ring_len = 32 * rx_size
        if kind == 0:   # outside RAM / wraps / below 1 MiB / at canaries
            return desc(rng.choice(HOSTILE_ADDRS), rng.choice([256, 2048, 4096, 0x10000]), OWN)
        if kind == 1:   # over its own RX ring
            return desc(rx + 32 * rng.randrange(max(1, rx_size)), 2048, OWN)
        if kind == 2:   # overlapping the ring's start or end
            return desc(rng.choice([rx - 1024, rx + ring_len - 16, rx - 256]),
                        rng.choice([257, 1025, 2048]), OWN)
        if kind == 3:   # too small, pointing at canaries
            return desc(rng.choice([TX_AREA, FREE_CANARY, RAM_SIZE - 0x100, 0x90000]),
                        rng.choice([0, 1, 14, 16, 255]), OWN)
        if kind == 4:   # too large
            return desc(RX_AREA + (slot % RX_SLOTS) * RX_SLOT,
                        rng.choice([MAX_PACKET + 1, 0x80000000, 0xFFFFFFFF]), OWN)
        if kind == 5:   # straddles the end of RAM
            return desc(RAM_SIZE - rng.choice([256, 300, 2048]), rng.choice([512, 4096]), OWN)
        if kind == 6:   # not owned: a hole in the posted buffers
            return desc(RX_AREA + (slot % RX_SLOTS) * RX_SLOT, 2048, 0)
        if kind == 7:   # random flags and fields, status zero
            e = bytearray(rng.randbytes(32))
            e[0:8] = struct.pack("<Q", rng.choice(HOSTILE_ADDRS))
            e[14:16] = b"\0\0"
            struct.pack_into("<H", e, 12, struct.unpack_from("<H", e, 12)[0] | OWN)
            return bytes(e)
        if kind == 8:   # in the TX area, where the driver's frames are
            return desc(TX_AREA + rng.randrange(0, TX_AREA_SIZE, 64), rng.choice([16, 255]), OWN)
        if kind == 9:   # over the notify area or the TX ring: allowed, in W
            tx, tx_size, _, _, notify = s.rings()
            return desc(rng.choice([notify, tx]), 256, OWN)
        if kind == 10:  # MORE and offload bits set by the driver
            return desc(RX_AREA + (slot % RX_SLOTS) * RX_SLOT, 2048,
                        OWN | rng.choice([MORE, NEEDS_CSUM, 0x7FFF]), gso_type=rng.randrange(256))
        return desc(0, 0, OWN)

    def post_rx(self, rng, s, count, hostile=0.15, start=None):
        _, _, rx, rx_size, _ = s.rings()
        if not ring_in_ram(rx, rx_size):
            return
        pos = s.rx_next if start is None else start
        entries = [self.rx_buffer(rng, s, (pos + i) % rx_size, hostile) for i in range(count)]
        # In ring order, in runs that do not wrap; the head entry last,
        # as a driver would (OWN of the first entry makes the chain usable).
        i = 0
        runs = []
        while i < count:
            slot = (pos + i) % rx_size
            n = min(count - i, rx_size - slot)
            runs.append((rx + 32 * slot, entries[i:i + n]))
            i += n
        for addr, run in reversed(runs):
            s.write_descs(addr, run, ring="rx")
        if start is None:
            s.rx_next = pos + count

    def op_rx_post(self, rng, s):
        count = rng.choice([1, 1, 2, 4, 8, 16, 33])
        hostile = rng.choice([0.0, 0.1, 0.3, 1.0])
        self.log(f"{s.name}: post {count} RX buffers, hostile {hostile}")
        self.post_rx(rng, s, count, hostile)

    # TX ----------------------------------------------------------------------
    def tx_alloc(self, s, n):
        if s.tx_cursor + n > TX_AREA_SIZE:
            s.tx_cursor = 0
        addr = TX_AREA + s.tx_cursor
        s.tx_cursor = (s.tx_cursor + n + 63) & ~63
        return addr

    def frame(self, rng, s, kind):
        if kind in ("unicast", "offload", "big", "chain"):
            dst, src = s.peer_mac, s.mac
        elif kind == "broadcast":
            dst, src = b"\xff" * 6, s.mac
        elif kind == "multicast":
            dst, src = bytes([0x01, 0x00, 0x5e, 0, 0, rng.randrange(256)]), s.mac
        elif kind == "spoofed":
            dst, src = s.peer_mac, rng.choice([s.peer_mac, b"\0" * 6, bytes(rng.randbytes(6))])
        elif kind == "to_self":
            dst, src = s.mac, s.mac
        else:   # nowhere
            dst, src = bytes.fromhex("02706c0000") + bytes([rng.choice([0, 3, 9, 63, 255])]), s.mac
        if kind == "big":
            n = rng.choice([9000, 16384, 32768, MAX_PACKET - 14, MAX_PACKET - 13])
        else:
            n = rng.choice([0, 1, 46, 50, 100, 242, 243, 500, 1486, 1500, 2034, 4000,
                            rng.randrange(4000, 20000)])
        payload = bytes([rng.randrange(256)]) * n
        return dst + src + b"\x08\x00" + payload

    def op_tx(self, rng, s):
        kind = rng.choices(TX_KINDS, TX_WEIGHTS)[0]
        tx, tx_size, _, _, _ = s.rings()
        if not ring_in_ram(tx, tx_size):
            # No ring where the driver believes: a doorbell, a register.
            self.log(f"{s.name}: TX with no usable ring: kick")
            s.writel("TX_KICK", 1)
            return
        entries = []
        if kind in ("garbage", "hostile_addr", "long_chain", "unterminated", "reserved",
                    "runt", "zero_len"):
            entries = self.bad_tx(rng, s, kind, tx_size)
        else:
            data = self.frame(rng, s, kind)
            nseg = rng.choices([1, 2, 3, 4, 8, 32, 33], [30, 8, 4, 3, 2, 1, 0.5])[0]
            if kind == "chain":
                nseg = rng.choice([2, 3, 4, 8, 16, 32, 33])
            nseg = max(1, min(nseg, len(data)))
            cuts = sorted(rng.sample(range(1, len(data)), nseg - 1)) if nseg > 1 else []
            if cuts and cuts[0] < 14 and rng.random() < 0.7:
                cuts[0] = min(14, len(data) - 1)   # mostly a whole header first
                cuts = sorted(set(cuts))
            bounds = [0] + cuts + [len(data)]
            for i in range(len(bounds) - 1):
                seg = data[bounds[i]:bounds[i + 1]]
                addr = self.tx_alloc(s, len(seg))
                s.memwrite(addr, seg)
                flags = OWN | (MORE if i < len(bounds) - 2 else 0)
                entries.append([addr, len(seg), flags, 0, 0, 0, 0, 0])
            if kind == "offload" or (s.features & F_CSUM and rng.random() < 0.3):
                e = entries[0]
                e[2] |= rng.choice([NEEDS_CSUM, NEEDS_CSUM, DATA_VALID, NEEDS_CSUM | DATA_VALID])
                e[3], e[4] = (v & 0xFFFF for v in rng.choice(
                    [(34, 16), (34, 6), (0, 0), (len(data) - 2, 0), (len(data), 0),
                     (0xFFFF, 0xFFFF), (14, len(data))]))
                if rng.random() < 0.5:
                    e[5], e[6], e[7] = rng.choice([(1448, 1, 66), (1448, 4, 86), (1400, 5, 42),
                                                   (0, 1, 0), (1448, 0x81, 66), (1, 3, 255),
                                                   (1448, 2, 66), (1448, 0x80, 0)])
            entries = [desc(e[0], e[1], e[2], csum_start=e[3], csum_offset=e[4],
                            gso_size=e[5], gso_type=e[6], hdr_len=e[7]) for e in entries]
        self.log(f"{s.name}: TX {kind}, {len(entries)} entries at {s.tx_next}")
        slot = s.tx_next
        if rng.random() < 0.04:
            slot = rng.randrange(tx_size)      # the driver lost its position
        runs, i = [], 0
        while i < len(entries):
            pos = (slot + i) % tx_size
            n = min(len(entries) - i, tx_size - pos)
            runs.append((tx + 32 * pos, entries[i:i + n]))
            i += n
        order = runs if rng.random() < 0.5 else list(reversed(runs))
        for addr, run in order:
            s.write_descs(addr, run, ring="tx")
        s.tx_next = slot + len(entries)
        if rng.random() < 0.7:
            s.writel("TX_KICK", rng.choice([1, 1, 0, 0xFFFFFFFF]))

    def bad_tx(self, rng, s, kind, tx_size):
        good = self.frame(rng, s, "unicast")
        addr = self.tx_alloc(s, len(good))
        s.memwrite(addr, good)
        if kind == "garbage":
            out = []
            for _ in range(rng.choice([1, 1, 2, 5])):
                e = bytearray(rng.randbytes(32))
                if rng.random() < 0.5:
                    e[0:8] = struct.pack("<Q", rng.choice(HOSTILE_ADDRS + [addr]))
                e[14:16] = b"\0\0"
                struct.pack_into("<H", e, 12, struct.unpack_from("<H", e, 12)[0] | OWN)
                out.append(bytes(e))
            return out
        if kind == "hostile_addr":
            return [desc(rng.choice(HOSTILE_ADDRS), rng.choice([len(good), 64, 0x200, 0x10000,
                                                               0xFFFFFFFF]), OWN)]
        if kind == "long_chain":
            n = rng.choice([MAX_SEGS, MAX_SEGS + 1, tx_size, tx_size + 1, 40])
            n = min(n, tx_size)
            return [desc(addr, 14 if i == 0 else 1, OWN | MORE) for i in range(n - 1)] + \
                [desc(addr, 1, OWN | (MORE if rng.random() < 0.5 else 0))]
        if kind == "unterminated":    # MORE, and the next entry is not ours yet
            return [desc(addr, len(good), OWN | MORE)]
        if kind == "reserved":
            return [desc(addr, len(good), OWN | rng.choice([0, 0x100, 0x7FF8]),
                         reserved=rng.choice([0, 1, 0xFFFFFFFF]),
                         gso_type=rng.choice([0, 2, 0x42, 0x80]))]
        if kind == "runt":
            return [desc(addr, rng.choice([1, 12, 13]), OWN)]
        return [desc(addr, 0, OWN)]

    def op_kick(self, rng, s):
        width = rng.choices([4, 1, 2, 8], [20, 1, 1, 1])[0]
        self.log(f"{s.name}: TX_KICK width {width}")
        s.reg_write(R["TX_KICK"], rng.choice([1, 0, 0xFFFFFFFF]), width)

    def op_storm(self, rng, s):
        n = int(2 ** rng.uniform(4, 11))
        mixed = rng.random() < 0.3
        self.log(f"{s.name}: doorbell storm of {n}{' with packets' if mixed else ''}")
        for i in range(n):
            if mixed and i % max(1, n // 4) == 0:
                self.op_tx(rng, s)
            s.conn.send(f"writel {BAR0 + R['TX_KICK']:#x} 0x1")
        s.seq += 1

    # registers ---------------------------------------------------------------
    def value(self, rng, s):
        tx, tx_size, rx, rx_size, notify = s.rings()
        kind = rng.randrange(10)
        if kind == 0:
            return rng.choice([0, 0xFFFFFFFF, 1, 2, 3, 0x80, 0x81, 0x83, 0x82, 0x80000000])
        if kind == 1:
            return rng.choice([tx, rx, notify, HOME_TX, HOME_RX, HOME_NOTIFY, tx + 8,
                               rx + 64, RAM_SIZE - 64, RAM_SIZE, FLOOR, FLOOR - 64]) & 0xFFFFFFFF
        if kind == 2:
            return rng.choice(ODD_SIZES + RING_SIZES)
        if kind == 3:
            return rng.choice(HOSTILE_ADDRS) & 0xFFFFFFFF
        if kind == 4:
            return rng.choice(HOSTILE_ADDRS) >> 32
        if kind == 5:
            return rng.randrange(1 << 32)
        if kind == 6:
            return 1 << rng.randrange(32)
        if kind == 7:
            return rng.randrange(16)
        if kind == 8:
            return rng.choice([notify, notify + 0x40, notify + 0x80, notify + 256]) & 0xFFFFFFFF
        return rng.randrange(256)

    def offset(self, rng):
        kind = rng.randrange(6)
        if kind <= 2:
            return rng.choice(REG_OFFSETS)
        if kind == 3:
            return rng.choice(REG_OFFSETS) + rng.choice([1, 2, 3, 4, -1, -2])
        if kind == 4:
            return R["COUNTERS"] + rng.randrange(0, 0x100, 4) if rng.random() < 0.5 \
                else R["MBOX_REQUEST"] + rng.randrange(0, 0x100, 4)
        return rng.randrange(0, 0x1000)

    def op_reg_write(self, rng, s):
        width = rng.choices([4, 1, 2, 8], [12, 1, 1, 2])[0]
        off = max(0, min(self.offset(rng), 0x1000 - width))
        val = self.value(rng, s)
        if width == 8:
            val |= self.value(rng, s) << 32
        if off == R["MBOX_SEND"] and rng.random() < 0.8:
            val = 0        # sending now and then is enough (op_mbox)
        self.log(f"{s.name}: write{width} {off:#x} = {val:#x}")
        s.reg_write(off, val, width)

    def op_reg_read(self, rng, s):
        width = rng.choices([4, 1, 2, 8], [8, 1, 1, 1])[0]
        off = max(0, min(self.offset(rng), 0x1000 - width))
        cmd = {1: "readb", 2: "readw", 4: "readl", 8: "readq"}[width]
        val = int(s.conn.query(f"{cmd} {BAR0 + off:#x}"), 16)
        self.log(f"{s.name}: read{width} {off:#x} -> {val:#x}")
        parts = split_access(off, width)
        if all(n != 4 for _, n, _ in parts) and val != 0:
            raise OracleFailure(f"{s.name}: {cmd} at {off:#x} (accesses "
                                f"{[(hex(a), n) for a, n, _ in parts]}) read {val:#x}, not 0")
        if width == 4 and s.mem_on and off in CONSTANT_REGS and val != CONSTANT_REGS[off](s):
            raise OracleFailure(f"{s.name}: readl {off:#x} -> {val:#x}, expected "
                                f"{CONSTANT_REGS[off](s):#x}")

    def op_status(self, rng, s):
        kind = rng.choices(["reset", "ack", "driver_ok", "failed", "garbage", "bringup",
                            "features", "irq_ctrl"], [3, 2, 3, 1, 1, 4, 1, 1])[0]
        if kind == "bringup":
            self.op_bringup(rng, s)
            return
        val = {"reset": 0, "ack": ACK, "driver_ok": ACK | DRIVER_OK,
               "failed": FAILED | rng.choice([0, ACK, ACK | DRIVER_OK]),
               "garbage": rng.choice([DRIVER_OK, 0x7F, 0x100, 0xFFFFFFFF, 0x84, 0x43])}.get(kind)
        if kind == "features":
            self.log(f"{s.name}: DRV_FEATURES")
            s.writel("DRV_FEATURES", rng.choice([0, 1, 2, 3, 4, 0xFFFFFFFF]))
            return
        if kind == "irq_ctrl":
            s.writel("IRQ_CTRL", rng.choice([0, 1, 2, 3, 4, 0xFFFFFFFF]))
            return
        self.log(f"{s.name}: STATUS = {val:#x}")
        s.writel("STATUS", val)

    # notify area -------------------------------------------------------------
    def op_notify(self, rng, s):
        _, _, _, _, notify = s.rings()
        if not (FLOOR <= notify and notify + NOTIFY_SIZE <= RAM_SIZE):
            return
        kind = rng.randrange(6)
        self.log(f"{s.name}: notify write kind {kind}")
        u32 = lambda v: struct.pack("<I", v & 0xFFFFFFFF)  # noqa: E731
        if kind == 0:
            s.memwrite(notify + 0x40, u32(s.tx_next + rng.choice([-1, 0, 1, 2, 5, 1 << 31])))
        elif kind == 1:
            s.memwrite(notify + 0x80, u32(rng.choice([1, 1, 0, 2, 0xFFFFFFFF])))
        elif kind == 2:
            s.memwrite(notify + 0x40, u32(s.tx_next + 1))
            s.memwrite(notify + 0x80, u32(1))
        elif kind == 3:
            s.memwrite(notify + rng.choice([0, 4]), u32(rng.choice([0, 1, 0xFFFFFFFF])))
        elif kind == 4:
            s.memwrite(notify, rng.randbytes(NOTIFY_SIZE))
        else:
            s.memwrite(notify + 0xC0, rng.randbytes(64))

    # PCI ---------------------------------------------------------------------
    def op_pci(self, rng, s):
        cmd = rng.choices([CMD_MEMORY | CMD_MASTER, CMD_MEMORY, CMD_MEMORY | CMD_MASTER | 0x400,
                           CMD_MASTER, 0], [8, 8, 1, 0.5, 0.5])[0]
        self.log(f"{s.name}: PCI command {cmd:#x}")
        s.set_command(cmd)
        if not cmd & CMD_MEMORY and rng.random() < 0.7:
            s.set_command(cmd | CMD_MEMORY)

    def op_msix(self, rng, s):
        cap = s.msix_cap
        kind = rng.randrange(4)
        self.log(f"{s.name}: MSI-X kind {kind}")
        if kind == 0:   # program the table: vector v writes MSI_AREA + 4 v
            for v in range(ABI["PARTLINK_NR_VECTORS"]):
                e = BAR1 + 16 * v
                addr = rng.choice([MSI_AREA + 4 * v, MSI_AREA + 4 * v, APIC_MSI])
                s.conn.writel(e, addr)
                s.conn.writel(e + 4, 0)
                s.conn.writel(e + 8, 0x4000 | v)
                s.conn.writel(e + 12, rng.choice([0, 0, 1]))
        elif kind == 1:
            s.conn.cfg_writel(s.devfn, cap, rng.choice([1 << 31, 1 << 31, 3 << 30, 0, 1 << 30]))
        elif kind == 2:
            s.conn.writel(BAR1 + 16 * rng.randrange(3) + 12, rng.randrange(2))
        else:           # and straight to enabled, table as it is
            for v in range(3):
                s.conn.writel(BAR1 + 16 * v, MSI_AREA + 4 * v)
                s.conn.writel(BAR1 + 16 * v + 12, 0)
            s.conn.cfg_writel(s.devfn, cap, 1 << 31)

    def op_settle(self, rng, s):
        """Give the TX threads time: wait for the last queued TX entry."""
        self.log("settle")
        self.settle(rng.choice([0.001, 0.005, 0.02]))

    def settle(self, timeout):
        deadline = time.monotonic() + timeout
        for s in self.sides:
            s.conn.flush()
        for s in self.sides:
            if not s.cur or not s.queued_tx:
                continue
            seq, addr = s.queued_tx[-1]
            if seq < s.cur.seq:
                continue
            while time.monotonic() < deadline:
                flags = struct.unpack("<H", s.conn.memread(addr + 12, 2))[0]
                if not flags & OWN:
                    break
                time.sleep(0.0005)

    def op_counters(self, rng, s):
        self.log(f"{s.name}: read counters")
        self.read_counters(s)

    def op_mbox(self, rng, s):
        self.log(f"{s.name}: mailbox")
        base = R["MBOX_REQUEST"]
        req = bytearray(rng.randbytes(128)) if rng.random() < 0.3 else bytearray(128)
        if rng.random() < 0.7:
            struct.pack_into("<I", req, 0, rng.choice([1, 2, 3, 0, 99]))
            req[8:12] = b"vm1\0"
        for i in range(0, 128, 4):
            s.conn.writel(BAR0 + base + i, struct.unpack_from("<I", req, i)[0])
        s.writel("MBOX_SEND", rng.choice([1, 1, 1, 2, 0xFFFFFFFF]))
        if rng.random() < 0.5:
            s.readl("MBOX_STATUS")

    def seg_entries(self, s):
        """The device's segment table as {name: (offset, size, flags)}."""
        out = {}
        for slot in range(ABI["PARTLINK_SEG_SLOTS"]):
            base = BAR0 + SEG_TABLE + slot * SEG_ENTRY
            words = [int(x, 16) for x in s.conn.queries(
                [f"readl {base + i:#x}" for i in range(0, SEG_ENTRY, 4)])]
            raw = b"".join(struct.pack("<I", w) for w in words)
            name = raw[:32].split(b"\0")[0].decode(errors="replace")
            offset, size = struct.unpack_from("<QQ", raw, 32)
            flags = struct.unpack_from("<H", raw, 58)[0]
            if flags & ABI["PARTLINK_SEG_PRESENT"]:
                out[name] = (offset, size, flags)
        return out

    def op_seg(self, rng, s):
        """Segments: rings of every shape, acknowledgements from the past
        and the future, and the window: holes, a read-only segment whose
        content the other side must keep seeing, beyond the end."""
        c = s.conn
        kind = rng.choices(["ring", "ack", "window", "ro"], [4, 2, 3, 2])[0]
        if kind == "ring":
            val = rng.choice([rng.randrange(4), rng.randrange(256)])
            port = rng.choice([s.peer_port, s.port, rng.randrange(256)])
            if rng.random() < 0.2:
                val |= SEG_RING_ALL
            else:
                val |= port << ABI["PARTLINK_SEG_RING_PORT_SHIFT"]
            if rng.random() < 0.1:
                val |= rng.getrandbits(32)
            self.log(f"{s.name}: SEG_RING {val:#x}")
            c.writel(BAR0 + R["SEG_RING"], val)
            st = int(c.query(f"readl {BAR0 + R['SEG_RING_STATUS']:#x}"), 16)
            if st > SEG_ST_MAX:
                raise OracleFailure(f"{s.name}: SEG_RING_STATUS {st} after {val:#x}")
            if rng.random() < 0.5:
                c.query(f"readl {BAR0 + R['SEG_PENDING']:#x}")
        elif kind == "ack":
            gen = int(c.query(f"readl {BAR0 + R['SEG_GENERATION']:#x}"), 16)
            val = (gen + rng.choice([0, 0, -1, 1, 1000, rng.getrandbits(32)])) & 0xFFFFFFFF
            self.log(f"{s.name}: SEG_ACK {val:#x} (generation {gen:#x})")
            c.writel(BAR0 + R["SEG_ACK"], val)
        else:
            c.cfg_writel(s.devfn, 0x18, BAR2 & 0xFFFFFFFF)
            c.cfg_writel(s.devfn, 0x1C, BAR2 >> 32)
            if kind == "window":
                off = rng.choice([rng.randrange(1 << 20), (1 << 30) - rng.randrange(1, 64),
                                  rng.randrange(1 << 30)])
                data = rng.randbytes(rng.choice([1, 4, 8, 64]))
                self.log(f"{s.name}: segment window {off:#x} <- {len(data)} bytes")
                c.memwrite(BAR2 + off, data)
                c.memread(BAR2 + off, len(data))
            else:
                # Side B maps "ro" read-only: its writes must never show.
                a, b = self.sides
                seg_a, seg_b = self.seg_entries(a).get("ro"), self.seg_entries(b).get("ro")
                if not seg_a or not seg_b or not (c.cfg_readl(a.devfn, PCI_COMMAND) &
                                                   c.cfg_readl(b.devfn, PCI_COMMAND) &
                                                   CMD_MEMORY):
                    return
                for side in (a, b):
                    side.conn.cfg_writel(side.devfn, 0x18, BAR2 & 0xFFFFFFFF)
                    side.conn.cfg_writel(side.devfn, 0x1C, BAR2 >> 32)
                off = rng.randrange(seg_a[1] - 16)
                a.conn.memwrite(BAR2 + seg_a[0] + off, rng.randbytes(16))
                want = a.conn.memread(BAR2 + seg_a[0] + off, 16)
                b.conn.memwrite(BAR2 + seg_b[0] + off, rng.randbytes(16))
                self.log(f"B: write to read-only segment at {off:#x}")
                for side, seg in ((a, seg_a), (b, seg_b)):
                    got = side.conn.memread(BAR2 + seg[0] + off, 16)
                    if got != want:
                        raise OracleFailure(f"{side.name} sees {got.hex()} in the read-only "
                                            f"segment at {off:#x}, {a.name} wrote {want.hex()}")

    def op_machine_reset(self, rng, s):
        """system_reset: every device of the guest resets, BARs with it."""
        self.log(f"{s.name}: machine reset")
        s.conn.flush()
        reply = s.q.qmp("system_reset")
        if "error" in reply:
            raise OracleFailure(f"system_reset: {reply}")
        deadline = time.monotonic() + 10
        while s.conn.cfg_readl(s.devfn, 0x10) & ~0xF:
            if time.monotonic() > deadline:
                raise OracleFailure(f"{s.name}: BAR 0 still mapped 10 s after system_reset")
            time.sleep(0.001)
        s.seq += 1
        s.last_reset = s.seq
        s.conn.cfg_writel(s.devfn, 0x10, BAR0)
        s.conn.cfg_writel(s.devfn, 0x14, BAR1)
        s.set_command(CMD_MEMORY | CMD_MASTER)
        s.follow_status()

    # --- the oracle --------------------------------------------------------------
    def epilogue(self):
        self.check_processes()
        self.settle(0.01)
        live = [s.cur for s in self.sides]
        # Stop both devices: from here on nothing writes into either guest.
        for s in self.sides:
            s.ending = True
            s.set_command(CMD_MEMORY | CMD_MASTER)
            s.writel("STATUS", 0)
        for s in self.sides:
            s.conn.flush()
        self.check_processes()
        for s in self.sides:
            if s.readl("MAGIC") != ABI["PARTLINK_MAGIC"]:
                raise OracleFailure(f"{s.name}: MAGIC no longer reads PLNK")
        for s, cfg in zip(self.sides, live):
            self.check_entries(s, cfg)
            self.check_canaries(s)
        before = {s.name: s.counters for s in self.sides}
        for s in self.sides:
            s.counters = self.read_counters(s)
        copies = sum(s.counters["copies"] for s in self.sides)
        received = sum(s.counters["rx_packets"] for s in self.sides)
        if copies != received:
            raise OracleFailure(f"copies {copies} != rx_packets {received} over the fabric: "
                                f"A {self.sides[0].counters} B {self.sides[1].counters}")
        self.stats["delivered"] += sum(s.counters["rx_packets"] - before[s.name]["rx_packets"]
                                       for s in self.sides)
        for s in self.sides:
            link = s.readl("LINK")
            if link != LINK_UP_1:
                raise OracleFailure(f"{s.name}: LINK reads {link:#x}, not {LINK_UP_1:#x}")
        self.check_processes()

    def allowed(self, s, since=0):
        """Ranges of s's RAM the devices may have written during the case
        (after seq `since`)."""
        w = [(MSI_AREA, 0x100)] + self.rx_buffers(s, since)
        for cfg in s.configs:
            if cfg.ended is None or cfg.ended > since:
                w += cfg.ranges()
        return merge_ranges(w)

    def rx_buffers(self, s, since=0):
        """Buffers a peer may have filled: posted (OWN) in an RX ring the
        device used (after seq `since`), and such that the device may not
        refuse them."""
        w = []
        rx_rings = [(cfg.rx, 32 * cfg.rx_size) for cfg in s.configs
                    if cfg.ended is None or cfg.ended > since]
        for _, addr, e in s.desc_writes:
            baddr, blen, flags = struct.unpack_from("<QIH", e)
            if not flags & OWN or not RX_BUF_MIN <= blen <= MAX_PACKET:
                continue
            if baddr < FLOOR or baddr + blen > RAM_SIZE:
                continue
            for ra, rn in rx_rings:
                if ra <= addr < ra + rn and not overlaps(baddr, blen, ra, rn):
                    w.append((baddr, blen))
                    break
        return w

    def check_canaries(self, s):
        regions = s.shadow.regions()
        got = s.conn.memreads([(r.start, len(r.want)) for r in regions])
        bad = [(r, g) for r, g in zip(regions, got) if r.want != g]
        if not bad:
            return
        allowed_since = {}
        report = []
        for r, g in bad:
            r.dirty = True      # a device wrote where it may: repaint
            if r.since not in allowed_since:
                allowed = self.allowed(s, r.since)
                allowed_since[r.since] = (allowed, [a for a, _ in allowed])
            allowed, starts = allowed_since[r.since]
            start, want = r.start, r.want
            for i in range(len(want)):
                if want[i] != g[i]:
                    addr = start + i
                    k = bisect_right(starts, addr) - 1
                    if k >= 0 and addr < allowed[k][0] + allowed[k][1]:
                        continue
                    report.append(addr)
        if report:
            first = report[0]
            lines = []
            for r, g in bad:
                if any(r.start <= a < r.start + len(r.want) for a in report[:50]):
                    lines.append(hexdump_diff(r.start, r.want, g))
            quiet = [r for r, _ in bad if r.since and r.start <= first < r.start + len(r.want)]
            what = (f"after STATUS = 0 (seq {quiet[0].since}) in what the ended configuration "
                    "had" if quiet else "outside rings, notify areas and posted RX buffers")
            raise OracleFailure(
                f"{s.name}: {len(report)} bytes of guest RAM changed {what}, first at "
                f"{first:#x}\n" + "\n".join(lines[:6]) +
                f"\n  configs: {[(c, c.seq, c.ended) for c in s.configs]}")

    def check_entries(self, s, cfg):
        """Entries of the configuration live at the end of the case that
        the driver handed over once (OWN written once, nothing else
        written over it since, so that no rewrite of an entry the device
        owned races its hand-back) and the device handed back."""
        if not cfg:
            return
        # What the driver wrote into each entry: descriptors, or anything
        # else (notify garbage, paint: None), in order.
        events = [(seq, addr, e) for seq, addr, e in s.desc_writes if seq > cfg.life_start]
        for seq, addr, n in s.raw_writes:
            if seq > cfg.life_start:
                events += [(seq, e, None) for e in range(addr - addr % 32, addr + n, 32)]
        before, after = {}, {}
        for seq, addr, e in sorted(events, key=lambda ev: ev[0]):
            if seq > cfg.seq:
                after.setdefault(addr, []).append(e)
            else:
                before[addr] = [e]      # the last one before DRIVER_OK counts
        writes = {a: before.get(a, []) + after.get(a, []) for a in set(before) | set(after)}
        writes = {a: w for a, w in writes.items() if None not in w}
        # Entries under an RX buffer the driver posted: a peer fills those.
        for addr, n in self.rx_buffers(s):
            for ring_base, ring_entries in ((cfg.tx, cfg.tx_size), (cfg.rx, cfg.rx_size)):
                if overlaps(addr, n, ring_base, 32 * ring_entries):
                    lo = max(addr, ring_base)
                    for e in range(lo - (lo - ring_base) % 32,
                                   min(addr + n, ring_base + 32 * ring_entries), 32):
                        writes.pop(e, None)
        own = lambda e: struct.unpack_from("<H", e, 12)[0] & OWN  # noqa: E731
        heads = []
        for ring, base, size in (("tx", cfg.tx, cfg.tx_size), ("rx", cfg.rx, cfg.rx_size)):
            now = s.conn.memread(base, 32 * size)
            # Entries handed over once: "own" while the device has them,
            # what it handed back otherwise; None: cannot tell.
            back = [None] * size
            for i in range(size):
                w = writes.get(base + 32 * i)
                if not w or not own(w[-1]) or any(own(e) for e in w[:-1]):
                    continue
                wrote = DESC.unpack(w[-1])
                got = DESC.unpack(now[32 * i:32 * i + 32])
                if got[2] & OWN:
                    back[i] = "own"
                    continue
                back[i] = got
                where = f"{s.name}: {ring} entry {i} at {base + 32 * i:#x}"
                if got[3] > ST_MAX:
                    raise OracleFailure(f"{where}: status {got[3]} handed back: {got}")
                if got[0] != wrote[0] or got[9:] != wrote[9:]:
                    raise OracleFailure(f"{where}: addr/reserved/cookie changed: "
                                        f"wrote {wrote} got {got}")
                if ring == "tx":
                    self.stats[f"tx_{STATUS_NAMES.get(got[3], got[3])}"] += 1
                    if got[1] != wrote[1] or got[2] != wrote[2] & ~OWN or got[4:9] != wrote[4:9]:
                        raise OracleFailure(f"{where}: wrote {wrote} got {got}")
                elif got[3] == ST_OK:
                    self.stats["rx_ok_entries"] += 1
                    if not 0 < got[1] <= wrote[1] or got[2] & ~(MORE | NEEDS_CSUM | DATA_VALID):
                        raise OracleFailure(f"{where}: posted {wrote} got {got}")
                else:
                    self.stats[f"rx_{STATUS_NAMES.get(got[3], got[3])}"] += 1
                    if got[1] != 0 or got[2] != 0:
                        raise OracleFailure(f"{where}: refused with len/flags: "
                                            f"posted {wrote} got {got}")
            if ring == "rx":
                heads += self.check_rx_chains(s, base, size, back)
        # Whatever the sender's driver wrote, the device copies the
        # addresses it checked: our MAC (or a group) and the sender's.
        if heads:
            for (where, _), eth in zip(heads, s.conn.memreads([(a, 12) for _, a in heads])):
                dst, src = eth[:6], eth[6:]
                if src != s.peer_mac or not (dst == s.mac or dst[0] & 1):
                    raise OracleFailure(f"{where}: received a packet from {src.hex(':')} "
                                        f"to {dst.hex(':')}")
                self.stats["rx_heads_checked"] += 1

    def check_rx_chains(self, s, base, size, back):
        """Packets in the RX ring: each entry was handed over once, so it
        held one packet's piece.  The head of a packet follows an entry
        that ended one or was refused (or is entry 0: the head starts
        there at DRIVER_OK); a packet is handed back whole, ends within
        PARTLINK_MAX_SEGS entries and the ring, and is 14..MAX_PACKET
        bytes.  Returns the heads whose buffer is ours alone."""
        heads = []
        for i in range(size):
            got = back[i]
            if not isinstance(got, tuple) or got[3] != ST_OK:
                continue
            prev = back[(i - 1) % size] if i else None
            if i and not (isinstance(prev, tuple) and (prev[3] != ST_OK or not prev[2] & MORE)):
                continue
            where = f"{s.name}: RX packet at entry {i} ({base + 32 * i:#x})"
            j, n, total = i, 1, got[1]
            while back[j][2] & MORE:
                j = (j + 1) % size
                n += 1
                if n > min(MAX_SEGS, size):
                    raise OracleFailure(f"{where}: a chain of more than {n - 1} entries "
                                        f"(ring of {size}): {back}")
                nxt = back[j]
                if nxt is None:
                    break
                if nxt == "own" or nxt[3] != ST_OK:
                    raise OracleFailure(f"{where}: chain goes on into entry {j} {nxt}")
                total += nxt[1]
            else:
                if not ABI["PARTLINK_MIN_PACKET"] <= total <= MAX_PACKET:
                    raise OracleFailure(f"{where}: a packet of {total} bytes in {n} entries")
                self.stats["rx_packets_checked"] += 1
            if size <= RX_SLOTS and RX_AREA <= got[0] and \
                    got[0] + got[1] <= RX_AREA + RX_SLOT * RX_SLOTS:
                heads.append((where, got[0]))
        return heads

    # --- failures ------------------------------------------------------------
    def failure(self, case, exc, tb=None):
        kind = type(exc).__name__
        f = {"seed": self.seed, "case": case, "kind": kind, "message": str(exc),
             "traceback": tb, "ops": list(self.oplog), "report": None}
        text = [f"seed {self.seed} case {case}: {kind}: {exc}", ""]
        if tb:
            text += ["fuzzer traceback:", tb]
        text += ["operations:"] + [f"  {o}" for o in self.oplog] + [""]
        for s in getattr(self, "sides", ()):
            for path, what in ((s.q.out_path, "output"), (s.q.log_path, "guest errors")):
                try:
                    body = Path(path).read_bytes().replace(b"\0", b"").decode(errors="replace")
                except OSError:
                    body = "(gone)"
                text += [f"--- QEMU {s.name} {what} (last 8000 bytes) ---", body[-8000:]]
            text += [f"--- qtest lines to {s.name} ({len(s.conn.trace)}) ---"]
            text += [line if len(line) < 300 else line[:300] + "..." for line in s.conn.trace]
        if self.fabric:
            text += ["--- partlinkd log (last 4000 bytes) ---", self.fabric.log()[-4000:]]
        if self.report_dir:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            path = self.report_dir / f"failure-seed{self.seed}-case{case}.txt"
            path.write_text("\n".join(text))
            f["report"] = str(path)
        f["text"] = "\n".join(text)
        return f

    def print_failure(self, f):
        print(f"fuzz: FAILURE seed {f['seed']} case {f['case']}: {f['kind']}: "
              f"{f['message'][:2000]}", file=self.out)
        if f["report"]:
            print(f"fuzz:   report: {f['report']}", file=self.out)
        print(f"fuzz:   rerun: {rerun_command(f)}", file=self.out, flush=True)


CONSTANT_REGS = {
    R["MAGIC"]: lambda s: ABI["PARTLINK_MAGIC"],
    R["VERSION"]: lambda s: ABI["PARTLINK_ABI_VERSION"],
    R["DEV_FEATURES"]: lambda s: ABI["PARTLINK_FEATURES"],
    R["SEG_SLOTS"]: lambda s: ABI["PARTLINK_SEG_SLOTS"],
    R["MAC_LO"]: lambda s: int.from_bytes(s.mac[:4], "little"),
    R["MAC_HI"]: lambda s: int.from_bytes(s.mac[4:], "little"),
    R["PORT_ID"]: lambda s: s.port,
    R["MAX_PACKET"]: lambda s: MAX_PACKET,
}

OPS, WEIGHTS = zip(*[
    ("tx", 25), ("rx_post", 10), ("kick", 8), ("storm", 2), ("reg_write", 12),
    ("reg_read", 6), ("status", 6), ("notify", 5), ("pci", 3), ("msix", 2),
    ("settle", 6), ("counters", 1), ("mbox", 0.5), ("machine_reset", 0.05),
    ("seg", 4),
])
# Shared segments: "both" for the two partitions, "ro" read-only for vm2.
# The seg op maps BAR 2, rings, acknowledges, and pokes the window.
SEGMENTS = {"segments": [
    {"name": "both", "size": "64K", "partitions": {"vm1": {}, "vm2": {}}},
    {"name": "ro", "size": "64K",
     "partitions": {"vm1": {}, "vm2": {"access": "ro"}}},
    {"name": "mine", "size": "8K", "partitions": {"vm1": {}}},
]}
BAR2 = 0x200000000   # above RAM, in PCI space
SEG_TABLE = R["SEG_TABLE"]
SEG_ENTRY = 64
SEG_RING_ALL = ABI["PARTLINK_SEG_RING_ALL"]
SEG_ST_MAX = ABI["PARTLINK_SEG_ST_BAD_VALUE"]
TX_KINDS, TX_WEIGHTS = zip(*[
    ("unicast", 40), ("broadcast", 6), ("multicast", 3), ("spoofed", 4), ("nowhere", 3),
    ("to_self", 2), ("offload", 8), ("big", 3), ("chain", 6), ("garbage", 8),
    ("hostile_addr", 6), ("long_chain", 3), ("unterminated", 2), ("reserved", 3),
    ("runt", 2), ("zero_len", 1),
])


def rerun_command(f):
    """The command that runs just the failed case again."""
    asan = " --asan" if Path(qtest.QEMU).resolve() == ASAN_QEMU.resolve() else ""
    return f"{sys.executable} {SCRIPT}{asan} --seed {f['seed']} --case {f['case']}"


def fmt_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--cases", type=int, default=1000, help="how many cases (default 1000)")
    ap.add_argument("--start", type=int, default=0, help="first case number (default 0)")
    ap.add_argument("--case", type=int, help="run just this case")
    ap.add_argument("--repeat", type=int, default=1, help="with --case: run it this often")
    ap.add_argument("--asan", action="store_true",
                    help=f"use {ASAN_QEMU.relative_to(REPO)} (make qemu-asan), "
                         f"ASAN_OPTIONS={ASAN_OPTIONS}")
    ap.add_argument("--progress", type=int, default=1000, help="print progress every N cases")
    ap.add_argument("--max-failures", type=int, default=20,
                    help="stop after this many failures (default 20)")
    ap.add_argument("-x", "--stop-on-failure", action="store_true")
    ap.add_argument("--report-dir", default=str(REPO / "build" / "fuzz"),
                    help="where failure reports go (default build/fuzz)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every operation")
    args = ap.parse_args(argv)

    if args.asan:
        if not ASAN_QEMU.exists():
            sys.exit(f"fuzz: {ASAN_QEMU} is missing: run 'make qemu-asan'")
        os.environ["PARTLINK_QEMU"] = str(ASAN_QEMU)
        os.environ.setdefault("ASAN_OPTIONS", ASAN_OPTIONS)
        qtest.QEMU = ASAN_QEMU
    if not PARTLINKD.exists():
        sys.exit(f"fuzz: {PARTLINKD} is missing: run 'make shim'")
    if args.case is not None:
        cases = [args.case] * args.repeat
        desc_ = f"case {args.case}" + (f" x{args.repeat}" if args.repeat > 1 else "")
    else:
        cases = range(args.start, args.start + args.cases)
        desc_ = f"cases {args.start}..{args.start + args.cases - 1}"
    print(f"fuzz: seed {args.seed}, {desc_}, QEMU {qtest.QEMU}", flush=True)
    fz = Fuzzer(args.seed, report_dir=args.report_dir, verbose=args.verbose)
    try:
        with fz:
            failures = fz.run(cases, progress=args.progress, max_failures=args.max_failures,
                              stop_on_failure=args.stop_on_failure)
    except KeyboardInterrupt:
        print("fuzz: interrupted", flush=True)
        failures = fz.failures
        fz.done = getattr(fz, "done", 0)
        fz.elapsed = getattr(fz, "elapsed", 0)
    el = max(fz.elapsed, 1e-9)
    print(f"fuzz: summary: seed {args.seed}, {fz.done} cases in {fmt_time(el)} "
          f"({fz.done / el:.1f} cases/s), {len(failures)} failures, "
          f"{fz.restarts} QEMU restarts")
    print(f"fuzz:   packets delivered {fz.stats['delivered']}; TX entries handed back: "
          + ", ".join(f"{k[3:]} {v}" for k, v in sorted(fz.stats.items()) if k.startswith("tx_"))
          + "; RX entries: " + ", ".join(f"{k[3:]} {v}" for k, v in sorted(fz.stats.items())
                                         if k.startswith("rx_")))
    print("fuzz:   operations: " + ", ".join(f"{k} {v}" for k, v in fz.ops.most_common()))
    for f in failures:
        print(f"fuzz:   FAILED seed {f['seed']} case {f['case']}: {f['kind']}: "
              f"{f['message'].splitlines()[0][:200]}")
        print(f"fuzz:     rerun: {rerun_command(f)}")
    sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
