"""Three guests on the data network (the default, partlink): ping, iperf3
and ssh between them."""

import itertools
import json
import re

import pytest

from conftest import IMAGES, guest_ping

VMS = ["vm1", "vm2", "vm3"]


def ip_of(vm):
    return "10.77.0." + vm[2:]


def test_up_reports_accel(cluster3):
    out = cluster3.boot_output.stdout + cluster3.boot_output.stderr
    assert re.search(r"accel (tcg|kvm)", out), out


def test_status_json(cluster3):
    parts = cluster3.partitions()
    assert sorted(parts) == VMS
    for name, p in parts.items():
        assert p["state"] == "running"
        assert p["ip"] == ip_of(name)
        assert p["accel"] in ("tcg", "kvm")
        assert p["net"] == cluster3.net_mode
        assert isinstance(p["qemu_pid"], int) and p["qemu_pid"] > 1
        with open(f"/proc/{p['qemu_pid']}/cmdline", "rb") as f:
            assert b"qemu-system-x86_64" in f.read()


def test_status_table(cluster3):
    table = cluster3.partlink("status").stdout
    for vm in VMS:
        assert re.search(rf"^{vm}\s.*running.*{re.escape(ip_of(vm))}", table, re.M), table


def test_guest_kernel_is_the_image_kernel(cluster3):
    expected = (IMAGES / "kernel-release").read_text().strip()
    assert cluster3.ssh("vm3", "uname -r").stdout.strip() == expected


def test_ssh_passes_exit_status(cluster3):
    assert cluster3.ssh("vm2", "exit 7", check=False).returncode == 7


def test_ssh_keeps_argument_words(cluster3):
    proc = cluster3.partlink("ssh", "vm1", "--", "printf", "<%s>", "a b", "c")
    assert proc.stdout == "<a b><c>"


def test_partlink_driver_binds_the_device(cluster3):
    for vm in VMS:
        out = cluster3.ssh(vm, "for d in /sys/bus/pci/devices/*; do "
                               "if [ $(cat $d/vendor):$(cat $d/device) = 0x1234:0x7071 ]; then "
                               "basename $(readlink $d/driver); fi; done").stdout
        assert out.strip() == "partlink", f"{vm}: {out!r}"


def test_every_pair_pings(cluster3):
    for src, dst in itertools.permutations(VMS, 2):
        out = guest_ping(cluster3, src, ip_of(dst), count=2)
        assert " 0% packet loss" in out


def test_iperf3_tcp_both_directions(cluster3):
    for flags in ("", "-R"):
        out = cluster3.ssh("vm1", f"iperf3 -c {ip_of('vm2')} -t 2 -J {flags}", timeout=60).stdout
        result = json.loads(out)
        received = result["end"]["sum_received"]
        assert received["bytes"] > 1_000_000, received
        assert received["bits_per_second"] > 0


def test_dbclient_over_the_data_network(cluster3):
    out = cluster3.ssh("vm1", "dbclient -i /root/.ssh/id_dropbear root@vm3 "
                              "'hostname; echo $SSH_CLIENT'").stdout.split("\n")
    assert out[0] == "vm3"
    assert out[1].split()[0] == ip_of("vm1"), "ssh did not come in over the data network"


def test_unknown_vm_is_a_clear_error(cluster3):
    proc = cluster3.partlink("ssh", "vm9", "--", "true", check=False)
    assert proc.returncode == 2
    assert "vm9" in proc.stderr and "vm1" in proc.stderr


def test_broken_network_is_detected(cluster3):
    """The connectivity check must be able to fail: cut vm2's data link."""
    data_if = cluster3.data_if
    cluster3.ssh("vm2", f"ip link set {data_if} down")
    try:
        with pytest.raises(AssertionError, match="ping failed"):
            guest_ping(cluster3, "vm1", ip_of("vm2"), count=1)
    finally:
        cluster3.ssh("vm2", f"ip link set {data_if} up")
    guest_ping(cluster3, "vm1", ip_of("vm2"), count=2)


def test_guest_logs_kept(cluster3):
    for vm in VMS:
        console = (cluster3.run_dir / f"{vm}.console").read_text(errors="replace")
        assert f"partlink-guest: ready name={vm}" in console


def test_ssh_single_word_is_a_command_line(cluster3):
    proc = cluster3.partlink("ssh", "vm2", "--", "echo one two | wc -w")
    assert proc.stdout.strip() == "2"
