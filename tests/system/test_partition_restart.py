"""Peers come and go: one partition of a running cluster killed with SIGKILL,
or stopped with `partlink stop`, drops out (its peers see it gone, their
traffic to each other goes on), and `partlink start` brings it back with the
same addresses, while the others and partlinkd keep running.

Three guests on the default network (partlink, pl0).  The tests run in
order on one cluster; each leaves all three partitions running.
"""

import json
import os
import signal
import time

from conftest import guest_ping
from procs import qemu_pids

VMS = ("vm1", "vm2", "vm3")
GONE_WITHIN = 10  # s: partlinkd sees the QEMU's socket close and marks the slot down


def ip_of(vm):
    return f"10.77.0.{vm[2:]}"


def wait_for_status(cluster, check, what, timeout=GONE_WITHIN):
    """Polls `partlink status --json` until check(partitions) is true;
    returns those partitions, or fails with the last status."""
    deadline = time.monotonic() + timeout
    while True:
        parts = cluster.partitions()
        if check(parts):
            return parts
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n"
                                 f"{json.dumps(parts, indent=1)}")
        time.sleep(0.2)


def peers(parts):
    return {vm: parts[vm]["peers"] for vm in VMS}


def all_up(parts):
    return all(parts[vm]["state"] == "running" and parts[vm]["link"] == "up"
               and parts[vm]["peers"] == 2 for vm in VMS)


def iperf_between(cluster, client, server):
    out = cluster.ssh(client, f"iperf3 -c {ip_of(server)} -t 2 -J", timeout=90).stdout
    received = json.loads(out)["end"]["sum_received"]["bytes"]
    assert received > 0, out
    return received


def assert_ping_fails(cluster, src, dst_ip):
    proc = cluster.ssh(src, f"ping -c 2 -W 1 {dst_ip}", check=False)
    assert proc.returncode != 0, f"{src} still reaches {dst_ip}\n{proc.stdout}"


def assert_back(cluster, vm, old, start_output):
    """vm runs again, booted afresh with its old addresses, and is reachable
    over pl0 from the others and over ssh with ethtool."""
    parts = wait_for_status(cluster, all_up, f"{vm} back: every partition up with 2 peers")
    new = parts[vm]
    assert new["qemu_pid"] and new["qemu_pid"] != old["qemu_pid"]
    for key in ("ip", "mac", "port", "net"):
        assert new[key] == old[key], key
    # Its ssh port, unless something else took it meanwhile.
    assert (new["ssh_port"] == old["ssh_port"]
            or f"ssh port {old['ssh_port']} is taken now" in start_output), start_output
    for other in VMS:
        if other != vm:
            guest_ping(cluster, other, ip_of(vm))
    stats = cluster.ssh(vm, "ethtool -S pl0").stdout
    assert "tx_packets" in stats and "copies" in stats, stats
    assert cluster.ssh(vm, "hostname").stdout.strip() == vm


def test_killed_partition_drops_out_and_start_brings_it_back(cluster3):
    c = cluster3
    before = wait_for_status(c, all_up, "every partition up with 2 peers")
    partlinkd = c.status()["partlinkd"]["pid"]
    vm2 = before["vm2"]

    os.kill(vm2["qemu_pid"], signal.SIGKILL)

    # vm1 and vm3 see it gone.
    parts = wait_for_status(
        c, lambda p: p["vm2"]["state"] != "running" and p["vm1"]["peers"] == 1
        and p["vm3"]["peers"] == 1, "vm2 shown not running, vm1 and vm3 down to 1 peer")
    assert parts["vm2"]["state"] == "dead"
    assert parts["vm2"]["link"] == "down"
    assert parts["vm1"]["link"] == "up" and parts["vm3"]["link"] == "up"
    assert_ping_fails(c, "vm1", ip_of("vm2"))
    refused = c.partlink("ssh", "vm2", "--", "true", check=False)
    assert refused.returncode == 1 and "vm2 is not running" in refused.stderr, refused.stderr

    # Their traffic to each other goes on.
    guest_ping(c, "vm1", ip_of("vm3"))
    iperf_between(c, "vm1", "vm3")
    iperf_between(c, "vm3", "vm1")
    assert peers(c.partitions()) == {"vm1": 1, "vm2": 0, "vm3": 1}

    # Booting it again brings it back, on the same partlinkd.
    out = c.partlink("start", "vm2", timeout=600).stdout
    assert "starting vm2 again" in out and "vm2: up (" in out, out
    assert_back(c, "vm2", vm2, out)
    status = c.status()
    assert status["partlinkd"]["running"] and status["partlinkd"]["pid"] == partlinkd

    # Once it runs, `start` refuses.
    again = c.partlink("start", "vm2", check=False)
    assert again.returncode == 1, again.stderr
    pid = c.partitions()["vm2"]["qemu_pid"]
    assert f"vm2 is running (pid {pid}); stop it first with `partlink stop vm2`" in again.stderr


def test_stop_then_start(cluster3):
    c = cluster3
    before = wait_for_status(c, all_up, "every partition up with 2 peers")
    vm3 = before["vm3"]

    unknown = c.partlink("stop", "vm9", check=False)
    assert unknown.returncode == 2, unknown.stderr
    assert "no partition named 'vm9' (partitions: vm1, vm2, vm3)" in unknown.stderr

    out = c.partlink("stop", "vm3", timeout=60).stdout
    assert f"vm3: QEMU pid {vm3['qemu_pid']} stopped" in out, out
    assert vm3["qemu_pid"] not in qemu_pids(c.run_dir)
    assert len(qemu_pids(c.run_dir)) == 2  # the others keep running

    parts = wait_for_status(
        c, lambda p: p["vm1"]["peers"] == 1 and p["vm2"]["peers"] == 1,
        "vm1 and vm2 down to 1 peer")
    assert parts["vm3"]["state"] == "stopped"
    assert parts["vm3"]["qemu_pid"] is None
    assert parts["vm3"]["link"] == "down"
    assert c.status()["partlinkd"]["running"]
    guest_ping(c, "vm1", ip_of("vm2"))
    assert_ping_fails(c, "vm2", ip_of("vm3"))
    again = c.partlink("stop", "vm3")
    assert "vm3 is already stopped" in again.stdout

    out = c.partlink("start", "vm3", timeout=600).stdout
    assert_back(c, "vm3", vm3, out)
