"""up, down, crash and up again: nothing may be left behind."""

import os
import signal
import subprocess
import time

from conftest import PARTLINK, BOOT_TIMEOUT, guest_ping, kill_leftovers
from procs import partlinkd_pids, qemu_pids


def host_links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_down_leaves_nothing_and_up_works_again(new_cluster):
    links_before = host_links()
    c = new_cluster(net="virtio-tap")  # about its taps and bridge
    c.up("--vms", "2")
    assert len(qemu_pids(c.run_dir)) == 2
    assert host_links() - links_before, "virtio-tap created no bridge or tap"
    out = c.down()
    assert out.returncode == 0, out.stderr
    assert qemu_pids(c.run_dir) == []
    assert host_links() == links_before
    assert not (c.run_dir / "state.json").exists()
    assert "nothing to stop" in c.down().stdout

    c.up("--vms", "2")
    guest_ping(c, "vm1", "10.77.0.2")
    c.down()
    assert qemu_pids(c.run_dir) == [] and host_links() == links_before


def test_down_after_killed_launcher(new_cluster):
    links_before = host_links()
    c = new_cluster()  # the default network: partlinkd runs too
    launcher = subprocess.Popen([str(PARTLINK), "--run-dir", str(c.run_dir), "up", "--vms", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(qemu_pids(c.run_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert qemu_pids(c.run_dir), "up never started QEMU"
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert partlinkd_pids(c.run_dir), "up never started partlinkd"
    proc = c.down()
    assert proc.returncode == 0, proc.stderr
    assert qemu_pids(c.run_dir) == []
    assert partlinkd_pids(c.run_dir) == []
    assert not (c.run_dir / "partlinkd.sock").exists()
    assert host_links() == links_before


def test_guest_crash_then_up_cleans_stale_state(new_cluster):
    c = new_cluster()
    c.up("--vms", "1")
    pid = c.partitions()["vm1"]["qemu_pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while c.partitions()["vm1"]["state"] != "dead" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.partitions()["vm1"]["state"] == "dead"
    c.up("--vms", "1")
    assert c.partitions()["vm1"]["state"] == "running"


def test_two_run_dirs_side_by_side(new_cluster):
    a, b = new_cluster("a"), new_cluster("b")
    procs = [subprocess.Popen([str(PARTLINK), "--run-dir", str(c.run_dir), "up", "--vms", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in (a, b)]
    for p in procs:
        out, _ = p.communicate(timeout=BOOT_TIMEOUT)
        assert p.returncode == 0, out
    assert a.ssh("vm1", "hostname").stdout.strip() == "vm1"
    assert b.ssh("vm1", "hostname").stdout.strip() == "vm1"
    pa, pb = a.partitions()["vm1"], b.partitions()["vm1"]
    assert pa["ssh_port"] != pb["ssh_port"]
    a.down()
    assert b.partitions()["vm1"]["state"] == "running", "down in one run dir hit the other"
    assert not kill_leftovers(a.run_dir)


def test_virtio_socket_network(new_cluster):
    c = new_cluster()
    c.up("--vms", "2", "--net", "virtio-socket")
    assert {p["net"] for p in c.partitions().values()} == {"virtio-socket"}
    guest_ping(c, "vm1", "10.77.0.2")
    guest_ping(c, "vm2", "10.77.0.1")
