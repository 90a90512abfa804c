"""Drive a partlink-pci the way a driver would, from a qtest session.

The ring layout used by every test lives in the guest's 64 MiB of RAM:

    0x200000  TX ring         0x210000  RX ring       0x220000  notify area
    0x300000  TX buffers      0x800000  RX buffers (one per RX entry)

The device's TX thread hands entries back after the doorbell, not during
it: tx_status() waits for that, with a deadline.
"""

import struct
import time

from abi import ABI

BAR0 = 0xFE000000  # inside q35's 32-bit PCI hole
BAR1 = 0xFE010000  # MSI-X table
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY_MASTER = 0x6
PCI_BAR0 = 0x10
PCI_BAR1 = 0x14

TX_RING = 0x200000
RX_RING = 0x210000
NOTIFY = 0x220000
TX_BUFS = 0x300000
RX_BUFS = 0x800000
RX_BUF_SIZE = 2048
RING_SIZE = 16

DESC = struct.Struct("<QIHHHHHBBII")
OWN = ABI["PARTLINK_DESC_OWN"]
# Descriptor status by name: ST["OK"], ST["NO_BUFFER"], ...
ST = {name[len("PARTLINK_ST_"):]: val for name, val in ABI.items()
      if name.startswith("PARTLINK_ST_")}
MORE = ABI["PARTLINK_DESC_MORE"]
COUNTERS = ["tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "copies",
            "bytes_copied", "rx_no_buffer", "tx_no_buffer", "bad_descriptors",
            "spoofed", "no_route", "tx_kicks", "rx_interrupts", "link_changes",
            "tx_errors", "rx_bad_buffer"]


def reg(name):
    return BAR0 + ABI[f"PARTLINK_REG_{name}"]


def desc(addr=0, length=0, flags=0, status=0, csum_start=0, csum_offset=0,
         gso_size=0, gso_type=0, hdr_len=0, reserved=0, cookie=0):
    return DESC.pack(addr, length, flags, status, csum_start, csum_offset,
                     gso_size, gso_type, hdr_len, reserved, cookie)


def frame(dst, src, payload):
    return bytes.fromhex(dst.replace(":", "")) + \
        bytes.fromhex(src.replace(":", "")) + b"\x08\x00" + payload


class Adapter:
    """One partlink-pci in one qtest QEMU."""

    def __init__(self, q, mac):
        self.q = q
        self.mac = mac
        self.devfn = q.pci_find(ABI["PARTLINK_PCI_VENDOR_ID"],
                                ABI["PARTLINK_PCI_DEVICE_ID"])
        assert self.devfn is not None, "partlink-pci not found on PCI bus 0"
        q.pci_cfg_writel(self.devfn, PCI_BAR0, BAR0)
        q.pci_cfg_writel(self.devfn, PCI_BAR1, BAR1)
        q.pci_cfg_writel(self.devfn, PCI_COMMAND, PCI_COMMAND_MEMORY_MASTER)
        self.tx_next = 0
        self.rx_next = 0

    def readl(self, name):
        return self.q.readl(reg(name))

    def writel(self, name, val):
        self.q.writel(reg(name), val)

    def counter(self, name):
        addr = reg("COUNTERS") + 8 * COUNTERS.index(name)
        low = self.q.readl(addr)
        return low | self.q.readl(addr + 4) << 32

    def counters(self):
        return {name: self.counter(name) for name in COUNTERS}

    def start(self, tx_ring=TX_RING, rx_ring=RX_RING, size=RING_SIZE,
              rx_size=None, features=0, post_rx=True, notify=NOTIFY):
        """The driver's handshake; returns the STATUS read back."""
        ack = ABI["PARTLINK_STATUS_ACKNOWLEDGE"]
        self.writel("STATUS", 0)
        self.writel("STATUS", ack)
        self.writel("DRV_FEATURES", features)
        self.ring_size = size
        self.rx_ring_size = rx_size or size
        self.tx_ring, self.rx_ring = tx_ring, rx_ring
        for name, val in (("TX_RING_LO", tx_ring & 0xFFFFFFFF),
                          ("TX_RING_HI", tx_ring >> 32),
                          ("TX_RING_SIZE", size),
                          ("RX_RING_LO", rx_ring & 0xFFFFFFFF),
                          ("RX_RING_HI", rx_ring >> 32),
                          ("RX_RING_SIZE", self.rx_ring_size),
                          ("NOTIFY_LO", notify & 0xFFFFFFFF),
                          ("NOTIFY_HI", notify >> 32)):
            self.writel(name, val)
        self.notify = notify
        if notify >= 0x100000 and notify < 64 << 20:
            self.q.memwrite(notify, bytes(ABI["PARTLINK_NOTIFY_SIZE"]))
        self.q.memwrite(tx_ring, bytes(32 * size))
        if post_rx:
            self.q.memwrite(rx_ring, b"".join(
                desc(RX_BUFS + i * RX_BUF_SIZE, RX_BUF_SIZE, OWN)
                for i in range(self.rx_ring_size)))
        self.writel("STATUS", ack | ABI["PARTLINK_STATUS_DRIVER_OK"])
        self.writel("IRQ_CTRL", ABI["PARTLINK_IRQ_DATA"] | ABI["PARTLINK_IRQ_LINK"])
        return self.readl("STATUS")

    def notify_field(self, name):
        off = ABI[f"PARTLINK_NOTIFY_{name}"]
        return int.from_bytes(self.q.memread(self.notify + off, 4), "little")

    def set_notify_field(self, name, val):
        off = ABI[f"PARTLINK_NOTIFY_{name}"]
        self.q.memwrite(self.notify + off, val.to_bytes(4, "little"))

    def tx_entry(self, i):
        return self.tx_ring + 32 * (i % self.ring_size)

    def rx_entry(self, i):
        return self.rx_ring + 32 * (i % self.rx_ring_size)

    def read_desc(self, addr):
        return DESC.unpack(self.q.memread(addr, 32))

    def queue(self, *entries):
        """Queue raw descriptors at the TX position; returns their slots."""
        slots = []
        for entry in entries:
            self.q.memwrite(self.tx_entry(self.tx_next), entry)
            slots.append(self.tx_next)
            self.tx_next += 1
        return slots

    def send(self, data, buf=TX_BUFS, kick=True):
        """Queue one packet in one entry; returns the TX status."""
        self.q.memwrite(buf, data)
        (slot,) = self.queue(desc(buf, len(data), OWN))
        if kick:
            self.writel("TX_KICK", 1)
        return self.tx_status(slot)

    def tx_status(self, slot, timeout=5):
        """The status the device wrote into a TX entry, once it has."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.read_desc(self.tx_entry(slot))
            if not entry[2] & OWN:
                return entry[3]
            assert time.monotonic() < deadline, \
                f"the device kept TX entry {slot} for {timeout} s"
            time.sleep(0.001)

    def receive(self):
        """The next packet in the RX ring as (bytes, first desc), or None."""
        data, first = b"", None
        while True:
            entry = self.read_desc(self.rx_entry(self.rx_next))
            if entry[2] & OWN:
                assert not data, "chain handed back partially"
                return None
            first = first or entry
            self.rx_next += 1
            if entry[3] != ABI["PARTLINK_ST_OK"]:
                return None, entry
            data += self.q.memread(entry[0], entry[1])
            if not entry[2] & MORE:
                return data, first
