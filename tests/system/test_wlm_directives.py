"""Capacity directives end to end (issue 4): `plwlm request` in a guest goes
through /dev/partlink-hv and the adapter's mailbox to partlinkd, which
authorizes it by the port it came from, clamps it, applies it to the
partitions' CPU cgroups, verifies it and writes the audit log that
`partlink wlm log` shows.  Three partitions under the default policy: vm1
is the WLM partition, each holds an equal share of the host's CPUs."""

import json
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
