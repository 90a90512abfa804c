"""What partlink-pci demands of the machine it is plugged into."""

import pytest

from qtest import Qtest, QtestError


def test_refuses_ram_peers_cannot_map():
    with pytest.raises(QtestError) as failure:
        Qtest("partlink-pci", shared_ram=False).close()
    message = str(failure.value)
    assert "partlink-pci needs guest RAM that peers can map" in message
    assert "memory-backend-memfd" in message and "share=on" in message


def test_blocks_live_migration():
    with Qtest("partlink-pci") as q:
        reply = q.qmp("migrate", uri="exec:cat >/dev/null")
        assert "error" in reply, reply
        assert "partlink-pci" in reply["error"]["desc"], reply
        assert "dirty page tracking" in reply["error"]["desc"], reply
        assert q.alive()


def test_migration_allowed_without_the_device():
    """The blocker above is the device's, not the test's setup."""
    with Qtest() as q:
        reply = q.qmp("migrate", uri="exec:cat >/dev/null")
        assert "error" not in reply, reply


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"])
def test_refuses_a_mac_peers_cannot_route_to(mac):
    with pytest.raises(QtestError) as failure:
        Qtest(f"partlink-pci,mac={mac}").close()
    assert "mac must be a unicast, non-zero address" in str(failure.value)
