"""Capacity directives end to end (issue 4): `plwlm request` in a guest goes
through /dev/partlink-hv and the adapter's mailbox to partlinkd, which
authorizes it by the port it came from, clamps it, applies it to the
partitions' CPU cgroups, verifies it and writes the audit log that
`partlink wlm log` shows.  Memory directives go the same way to the
target guest's virtio-balloon, which partlinkd drives over QMP.  Three
partitions under the default policy: vm1 is the WLM partition, each holds
an equal share of the host's CPUs and may be ballooned down to half of the
512 MiB it boots with."""

import json
import time
from pathlib import Path

import pytest

from test_capacity_placement import cap_file_quota

MICRO = 1_000_000


def quota_cpus(cluster):
    """Each partition's cap as the cgroup files hold it, in CPUs."""
    caps = {}
    for name, p in cluster.partitions().items():
        quota, period = cap_file_quota(Path(p["capacity"]["cgroup"]))
        caps[name] = quota / period
    return caps


def wlm_log(cluster):
    out = cluster.partlink("wlm", "log", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pool(cluster3):
    caps = quota_cpus(cluster3)
    return sum(caps.values())


def test_directive_from_the_wlm_partition_is_applied(cluster3, pool):
    c = cluster3
    before = quota_cpus(c)
    target = round(before["vm2"] + 0.2, 2)
    out = c.ssh("vm1", f"plwlm request --partition vm2 --cpu {target} --donor vm3")
    assert "applied" in out.stdout, out.stdout
    after = quota_cpus(c)
    assert after["vm2"] == pytest.approx(target, abs=1e-5)
    assert after["vm3"] == pytest.approx(before["vm3"] - (target - before["vm2"]), abs=1e-5)
    assert after["vm1"] == pytest.approx(before["vm1"], abs=1e-5)
    assert sum(after.values()) == pytest.approx(pool, abs=1e-5)

    record = wlm_log(c)[-1]
    assert record["from"] == "vm1" and record["result"] == "applied", record
    assert record["directive"]["target"] == "vm2"
    assert record["directive"]["donor"] == "vm3"
    assert record["verification"]["ok"] is True, record
    # The run directory holds the same log.
    run_log = Path(c.run_dir) / "wlm-audit.jsonl"
    assert json.loads(run_log.read_text().splitlines()[-1]) == record

    status = c.partitions()
    assert status["vm2"]["capacity"]["cap_cpus"] == pytest.approx(target, abs=1e-5)


def test_directive_beyond_the_maximum_is_clamped(cluster3, pool):
    c = cluster3
    out = c.ssh("vm1", "plwlm request --partition vm2 --cpu 500 --donor vm3")
    assert "clamped" in out.stdout, out.stdout
    after = quota_cpus(c)
    # vm3 gave everything above its minimum, no more.
    assert after["vm3"] == pytest.approx(0.1, abs=1e-5)
    assert sum(after.values()) == pytest.approx(pool, abs=1e-5)
    record = wlm_log(c)[-1]
    assert record["result"] == "clamped" and "minimum" in record["reason"], record


def test_directive_from_another_partition_is_refused_and_logged(cluster3, pool):
    c = cluster3
    before = quota_cpus(c)
    proc = c.ssh("vm2", "plwlm request --partition vm2 --cpu 1.5", check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "refused" in proc.stdout + proc.stderr
    assert quota_cpus(c) == before
    record = wlm_log(c)[-1]
    assert record["from"] == "vm2" and record["result"] == "refused", record
    assert "WLM" in record["reason"]


@pytest.mark.parametrize("args, why", [
    ("--partition vm9 --cpu 0.5", "unknown"),
    ("--partition vm2 --cpu -1 --no-check", "positive"),
    ("--partition vm2 --cpu 0 --no-check", "positive"),
    ("--partition vm2 --cpu 100000 --no-check", "absurd"),
])
def test_bad_directives_are_refused(cluster3, pool, args, why):
    c = cluster3
    before = quota_cpus(c)
    proc = c.ssh("vm1", f"plwlm request {args}", check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert quota_cpus(c) == before
    record = wlm_log(c)[-1]
    assert record["result"] == "refused" and why in record["reason"], record


def test_garbage_in_the_mailbox_is_refused(cluster3, pool):
    c = cluster3
    before = quota_cpus(c)
    for i in range(5):
        proc = c.ssh("vm1", "dd if=/dev/urandom of=/tmp/garbage bs=128 count=1 2>/dev/null && "
                            "plwlm request --raw /tmp/garbage", check=False)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "refused" in proc.stdout, proc.stdout
    assert quota_cpus(c) == before
    assert all(r["result"] == "refused" for r in wlm_log(c)[-5:])
    # The device and partlinkd are still serving.
    out = c.ssh("vm1", "plwlm request --partition vm2 --cpu 0.5 --donor vm3")
    assert "applied" in out.stdout or "clamped" in out.stdout


BOOT_MIB = 512


def guest_mem_total_mib(cluster, vm):
    """MemTotal as the guest sees it: a balloon without deflate-on-OOM takes
    its pages out of the guest's total."""
    out = cluster.ssh(vm, "grep MemTotal /proc/meminfo").stdout
    return int(out.split()[1]) / 1024


def wait_for_balloon(cluster, vm, mib, timeout=30):
    """The guest's RAM as `partlink status` reads it from QEMU, once it is
    `mib` (the balloon driver works in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = cluster.partitions()[vm]["memory_mib"]
        if seen == mib or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_memory_directive_moves_the_balloon(cluster3):
    c = cluster3
    assert wait_for_balloon(c, "vm2", BOOT_MIB) == BOOT_MIB
    total_before = guest_mem_total_mib(c, "vm2")
    out = c.ssh("vm1", "plwlm request --partition vm2 --memory 384")
    assert out.stdout.startswith("applied: vm2 memory 384 MiB"), out.stdout

    record = wlm_log(c)[-1]
    assert record["from"] == "vm1" and record["result"] == "applied", record
    assert record["directive"] == {"target": "vm2", "memory_mib": 384}, record
    assert record["memory"]["before_mib"] == BOOT_MIB, record
    assert record["memory"]["target_mib"] == 384, record
    assert wait_for_balloon(c, "vm2", 384) == 384
    # The guest gave the memory up: its total fell by what the balloon holds.
    assert guest_mem_total_mib(c, "vm2") == pytest.approx(total_before - 128, abs=2)
    # vm1 and vm3 were not touched.
    assert c.partitions()["vm3"]["memory_mib"] == BOOT_MIB
    table = c.partlink("status").stdout
    assert "384/512 MiB" in table, table

    out = c.ssh("vm1", f"plwlm request --partition vm2 --memory {BOOT_MIB}")
    assert out.stdout.startswith("applied"), out.stdout
    assert wait_for_balloon(c, "vm2", BOOT_MIB) == BOOT_MIB
    assert guest_mem_total_mib(c, "vm2") == pytest.approx(total_before, abs=2)
    assert "vm2 memory 512 MiB" in c.partlink("wlm", "log").stdout


@pytest.mark.parametrize("mib, target, limit", [(64, 256, "minimum"), (4096, 512, "maximum")])
def test_memory_directive_beyond_the_range_is_clamped(cluster3, mib, target, limit):
    c = cluster3
    proc = c.ssh("vm1", f"plwlm request --partition vm3 --memory {mib}")
    assert proc.stdout.startswith(f"clamped: vm3 memory {target} MiB"), proc.stdout
    record = wlm_log(c)[-1]
    assert record["result"] == "clamped" and limit in record["reason"], record
    assert record["memory"]["target_mib"] == target, record
    assert wait_for_balloon(c, "vm3", target) == target
    c.ssh("vm1", f"plwlm request --partition vm3 --memory {BOOT_MIB}")
    assert wait_for_balloon(c, "vm3", BOOT_MIB) == BOOT_MIB


@pytest.mark.parametrize("vm, args, why", [
    ("vm2", "--partition vm2 --memory 300", "not the WLM partition"),
    ("vm1", "--partition vm9 --memory 300", "unknown partition"),
    ("vm1", "--partition vm2 --memory 0 --no-check", "positive"),
    ("vm1", "--partition vm2 --memory -256 --no-check", "positive"),
    ("vm1", "--partition vm2 --memory 99999999 --no-check", "absurd"),
])
def test_bad_memory_directives_are_refused(cluster3, vm, args, why):
    c = cluster3
    proc = c.ssh(vm, f"plwlm request {args}", check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout.startswith("refused"), proc.stdout
    record = wlm_log(c)[-1]
    assert record["from"] == vm and record["result"] == "refused", record
    assert why in record["reason"], record
    assert "memory" not in record, "no balloon was touched"
    assert c.partitions()["vm2"]["memory_mib"] == BOOT_MIB
