"""Each partition's QEMU in its own CPU cgroup (issue 4): `partlink up`
places every QEMU, all its threads, in <cpu root>/partlink/<run-id>/vmN,
capped at the default policy's equal share of the host's CPUs; `status
--json` shows the capacity of each; `stop` and `down` remove the groups."""

import os
from pathlib import Path


def cap_file_quota(group: Path):
    """(quota_us, period_us) from cgroup v2's cpu.max or v1's cfs files."""
    if (group / "cpu.max").exists():
        quota, period = (group / "cpu.max").read_text().split()
        return (None if quota == "max" else int(quota)), int(period)
    quota = int((group / "cpu.cfs_quota_us").read_text())
    period = int((group / "cpu.cfs_period_us").read_text())
    return (None if quota < 0 else quota), period


def test_partitions_in_capped_cgroups_until_down(new_cluster):
    c = new_cluster("capacity")
    out = c.up("--vms", "2")
    assert "cgroup" in out.stdout + out.stderr

    parts = c.partitions()
    share = len(os.sched_getaffinity(0)) / 2
    groups = []
    for name in ("vm1", "vm2"):
        p = parts[name]
        cap = p["capacity"]
        assert cap is not None, p
        group = Path(cap["cgroup"])
        groups.append(group)
        assert group.name == name and group.parent.parent.name == "partlink", group
        assert group.is_dir()

        # The QEMU process, and every one of its threads, is in the group.
        pid = p["qemu_pid"]
        procs = (group / "cgroup.procs").read_text().split()
        assert str(pid) in procs, (pid, procs)
        tids = set(os.listdir(f"/proc/{pid}/task"))
        if (group / "tasks").exists():  # v1
            assert tids <= set((group / "tasks").read_text().split())
        else:
            assert (group / "cgroup.threads").exists()

        # Capped at the equal share: quota = period x share.
        quota, period = cap_file_quota(group)
        assert quota == round(period * share), (quota, period, share)
        assert cap["entitlement_cpus"] == share
        assert cap["cap_cpus"] == share
        assert cap["quota_us"] == quota and cap["period_us"] == period
        for key in ("usage_seconds", "nr_periods", "nr_throttled", "throttled_seconds"):
            assert cap[key] is not None and cap[key] >= 0, (key, cap)
        assert cap["usage_seconds"] > 0  # it booted a kernel
    run_group = groups[0].parent
    assert groups[1].parent == run_group

    assert "capacity" in c.partlink("status").stdout

    # stop removes the one group; start makes it again.
    c.partlink("stop", "vm2")
    assert not groups[1].exists() and groups[0].exists()
    c.partlink("start", "vm2", timeout=600)
    vm2 = c.partitions()["vm2"]
    assert str(vm2["qemu_pid"]) in (groups[1] / "cgroup.procs").read_text().split()

    c.down()
    assert not groups[0].exists() and not groups[1].exists()
    assert not run_group.exists()


def test_down_after_killed_launcher_removes_cgroups_by_scanning(new_cluster):
    """Without the state file (a launcher killed early, a corrupt state),
    `down` still finds the run's groups under <cpu root>/partlink/<run-id>."""
    c = new_cluster("capacity-killed")
    c.up("--vms", "1")
    group = Path(c.partitions()["vm1"]["capacity"]["cgroup"])
    assert group.is_dir()
    (c.run_dir / "state.json").write_text("{ corrupt")
    c.down()
    assert not group.exists() and not group.parent.exists()


def test_no_cgroups_boots_without_groups(new_cluster):
    c = new_cluster("capacity-none")
    c.up("--vms", "1", "--no-cgroups")
    vm1 = c.partitions()["vm1"]
    assert vm1["state"] == "running" and vm1["capacity"] is None
    pid = vm1["qemu_pid"]
    assert "/partlink/" not in Path(f"/proc/{pid}/cgroup").read_text()
