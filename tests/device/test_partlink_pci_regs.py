"""partlink-pci driven register by register over qtest, with no guest kernel.

Everything here is guest-controlled input: the device must answer with the
documented values, count what it rejects, and never let QEMU die.
"""

import pytest

from abi import ABI
from qtest import Qtest

BAR0 = 0xFE000000  # inside q35's 32-bit PCI hole
MAC = "02:70:6c:00:00:07"
PORT = 7
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 0x2
PCI_BAR0 = 0x10
PCI_CLASS_REVISION = 0x08


def reg(name):
    return BAR0 + ABI[f"PARTLINK_REG_{name}"]


def place_rings(dev):
    """DRIVER_OK needs rings and a notify area in RAM."""
    for name, val in (("TX_RING_LO", 0x200000), ("TX_RING_SIZE", 16),
                      ("RX_RING_LO", 0x210000), ("RX_RING_SIZE", 16),
                      ("NOTIFY_LO", 0x220000)):
        dev.writel(reg(name), val)


@pytest.fixture
def dev():
    with Qtest(f"partlink-pci,mac={MAC},port={PORT}") as q:
        devfn = q.pci_find(ABI["PARTLINK_PCI_VENDOR_ID"], ABI["PARTLINK_PCI_DEVICE_ID"])
        assert devfn is not None, "partlink-pci not found on PCI bus 0"
        q.devfn = devfn
        q.pci_cfg_writel(devfn, PCI_BAR0, BAR0)
        q.pci_cfg_writel(devfn, PCI_COMMAND, PCI_COMMAND_MEMORY)
        yield q
        assert q.alive(), "QEMU died"


def test_pci_identity(dev):
    class_rev = dev.pci_cfg_readl(dev.devfn, PCI_CLASS_REVISION)
    assert class_rev & 0xFF == ABI["PARTLINK_PCI_REVISION"]
    assert class_rev >> 16 == ABI["PARTLINK_PCI_CLASS"]


def test_bar0_size(dev):
    dev.pci_cfg_writel(dev.devfn, PCI_COMMAND, 0)
    dev.pci_cfg_writel(dev.devfn, PCI_BAR0, 0xFFFFFFFF)
    size_mask = dev.pci_cfg_readl(dev.devfn, PCI_BAR0) & ~0xF
    assert (~size_mask & 0xFFFFFFFF) + 1 == ABI["PARTLINK_REG_BAR_SIZE"]


def test_identity_registers(dev):
    assert dev.readl(reg("MAGIC")) == ABI["PARTLINK_MAGIC"]
    assert dev.readl(reg("VERSION")) == ABI["PARTLINK_ABI_VERSION"]
    assert dev.readl(reg("DEV_FEATURES")) == ABI["PARTLINK_FEATURES"]
    assert dev.readl(reg("PORT_ID")) == PORT
    mac = bytes.fromhex(MAC.replace(":", ""))
    assert dev.readl(reg("MAC_LO")) == int.from_bytes(mac[:4], "little")
    assert dev.readl(reg("MAC_HI")) == int.from_bytes(mac[4:], "little")
    assert dev.readl(reg("BAD_ACCESS")) == 0


def test_driver_handshake_and_reset(dev):
    ack = ABI["PARTLINK_STATUS_ACKNOWLEDGE"]
    ok = ABI["PARTLINK_STATUS_DRIVER_OK"]
    dev.writel(reg("STATUS"), ack)
    place_rings(dev)
    dev.writel(reg("STATUS"), ack | ok)
    assert dev.readl(reg("STATUS")) == ack | ok
    dev.writel(reg("SCRATCH"), 0xDEADBEEF)
    assert dev.readl(reg("SCRATCH")) == 0xDEADBEEF
    dev.writel(reg("STATUS"), 0)
    assert dev.readl(reg("STATUS")) == 0
    assert dev.readl(reg("SCRATCH")) == 0, "status 0 must reset driver state"


@pytest.mark.parametrize("name", ["MAGIC", "VERSION", "DEV_FEATURES", "MAC_LO",
                                  "MAC_HI", "PORT_ID", "BAD_ACCESS"])
def test_read_only_registers_reject_writes(dev, name):
    before = dev.readl(reg(name))
    dev.writel(reg(name), 0x12345678)
    after = dev.readl(reg(name))
    if name == "BAD_ACCESS":
        assert after == before + 1
    else:
        assert after == before
        assert dev.readl(reg("BAD_ACCESS")) == 1


def test_unknown_registers_are_counted(dev):
    # Between the segment registers and the segment table nothing is.
    assert dev.readl(reg("SEG_ACK") + 4) == 0
    assert dev.readl(reg("SEG_TABLE") - 4) == 0
    dev.writel(reg("SEG_TABLE"), 1)  # read-only
    assert dev.readl(reg("BAD_ACCESS")) == 3
    assert dev.alive()


def test_unknown_status_bits_rejected(dev):
    dev.writel(reg("STATUS"), ABI["PARTLINK_STATUS_ACKNOWLEDGE"])
    dev.writel(reg("STATUS"), 0x100)
    assert dev.readl(reg("STATUS")) == ABI["PARTLINK_STATUS_ACKNOWLEDGE"]
    assert dev.readl(reg("BAD_ACCESS")) == 1


def test_unoffered_feature_fails_device(dev):
    dev.writel(reg("DRV_FEATURES"), 0x80000000)
    assert dev.readl(reg("DRV_FEATURES")) == 0
    assert dev.readl(reg("STATUS")) & ABI["PARTLINK_STATUS_FAILED"]
    assert dev.readl(reg("BAD_ACCESS")) == 1


def test_wrong_width_accesses_are_counted_and_ignored(dev):
    dev.writel(reg("SCRATCH"), 0x11223344)
    dev.writeb(reg("SCRATCH"), 0xFF)
    dev.writew(reg("SCRATCH"), 0xFFFF)
    dev.command(f"writeq {reg('SCRATCH'):#x} 0xffffffffffffffff")
    assert dev.readb(reg("MAGIC")) == 0
    assert dev.readw(reg("MAGIC")) == 0
    assert dev.readl(reg("SCRATCH")) == 0x11223344
    assert dev.readl(reg("BAD_ACCESS")) == 5


def test_unaligned_accesses_have_no_effect(dev):
    dev.writel(reg("SCRATCH"), 0x11223344)
    dev.writel(reg("SCRATCH") + 1, 0xFFFFFFFF)
    dev.writew(reg("SCRATCH") + 3, 0xFFFF)
    assert dev.readl(reg("SCRATCH")) == 0x11223344
    assert dev.alive()


def test_register_flood_is_harmless(dev):
    for i in range(2000):
        dev.writel(BAR0 + (i * 4) % ABI["PARTLINK_REG_BAR_SIZE"], i)
    assert dev.alive()
    assert dev.readl(reg("MAGIC")) == ABI["PARTLINK_MAGIC"]


def test_system_reset_clears_counters(dev):
    dev.writel(reg("MAGIC"), 0)
    assert dev.readl(reg("BAD_ACCESS")) == 1
    # Hard reset through q35's reset control register.  The reset runs
    # asynchronously in QEMU's main loop; it has happened once the BAR that
    # firmware would program reads back unassigned again.
    dev.command("outb 0xcf9 0x6")
    for _ in range(1000):
        if dev.pci_cfg_readl(dev.devfn, PCI_BAR0) & ~0xF == 0:
            break
    else:
        pytest.fail("system reset did not happen")
    dev.pci_cfg_writel(dev.devfn, PCI_BAR0, BAR0)
    dev.pci_cfg_writel(dev.devfn, PCI_COMMAND, PCI_COMMAND_MEMORY)
    assert dev.readl(reg("BAD_ACCESS")) == 0


def test_driver_ok_needs_acknowledge(dev):
    dev.writel(reg("STATUS"), ABI["PARTLINK_STATUS_DRIVER_OK"])
    assert dev.readl(reg("STATUS")) == 0
    assert dev.readl(reg("BAD_ACCESS")) == 1


def test_driver_ok_and_failed_in_one_write_refused(dev):
    ack, ok = ABI["PARTLINK_STATUS_ACKNOWLEDGE"], ABI["PARTLINK_STATUS_DRIVER_OK"]
    dev.writel(reg("STATUS"), ack)
    place_rings(dev)
    dev.writel(reg("STATUS"), ack | ok | ABI["PARTLINK_STATUS_FAILED"])
    assert dev.readl(reg("STATUS")) == ack, "a failed device must not go live"
    assert dev.readl(reg("BAD_ACCESS")) == 1


def test_ring_registers_frozen_while_live(dev):
    ack, ok = ABI["PARTLINK_STATUS_ACKNOWLEDGE"], ABI["PARTLINK_STATUS_DRIVER_OK"]
    dev.writel(reg("STATUS"), ack)
    place_rings(dev)
    dev.writel(reg("STATUS"), ack | ok)
    dev.writel(reg("TX_RING_LO"), 0x400000)
    assert dev.readl(reg("TX_RING_LO")) == 0x200000
    dev.writel(reg("STATUS"), ack)  # DRIVER_OK is cleared only by a reset
    assert dev.readl(reg("STATUS")) == ack | ok
    assert dev.readl(reg("BAD_ACCESS")) == 2


def test_failed_sticks_until_reset(dev):
    ack, ok = ABI["PARTLINK_STATUS_ACKNOWLEDGE"], ABI["PARTLINK_STATUS_DRIVER_OK"]
    failed = ABI["PARTLINK_STATUS_FAILED"]
    dev.writel(reg("STATUS"), ack)
    dev.writel(reg("DRV_FEATURES"), 0x100)  # not offered: the device fails
    dev.writel(reg("STATUS"), ack | ok)
    assert dev.readl(reg("STATUS")) == ack | failed, "driver must see the refusal"
    dev.writel(reg("STATUS"), ack)
    assert dev.readl(reg("STATUS")) & failed, "FAILED cleared without a reset"
    dev.writel(reg("STATUS"), 0)
    assert dev.readl(reg("STATUS")) == 0
    dev.writel(reg("STATUS"), ack)
    place_rings(dev)
    dev.writel(reg("STATUS"), ack | ok)
    assert dev.readl(reg("STATUS")) == ack | ok


def test_features_frozen_while_live(dev):
    ack, ok = ABI["PARTLINK_STATUS_ACKNOWLEDGE"], ABI["PARTLINK_STATUS_DRIVER_OK"]
    dev.writel(reg("STATUS"), ack)
    place_rings(dev)
    dev.writel(reg("STATUS"), ack | ok)
    dev.writel(reg("DRV_FEATURES"), 0)
    assert dev.readl(reg("BAD_ACCESS")) == 1
    assert dev.readl(reg("STATUS")) == ack | ok
