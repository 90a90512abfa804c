"""The whole control loop of issue 4 on three guests: monitors in vm2 and
vm3 report to the manager in vm1 over pl0; a load step on vm2 makes the
manager ask, through /dev/partlink-hv and the mailbox, for CPU from vm3;
partlinkd applies it to the cgroups; the audit log, `partlink status` and
the chart show it.  Timing targets (reaction, throughput ratio) are
measured by `make demo-wlm`, not asserted here."""

from pathlib import Path

import pytest

import wlm_scenario
from test_capacity_placement import cap_file_quota


@pytest.fixture(scope="module")
def run(cluster3):
    result = wlm_scenario.run_phase(cluster3, dry_run=False, warmup=45, step=40)
    print(result["manager_log"])
    return result


def test_load_step_shifts_cpu_from_vm3_to_vm2(cluster3, run):
    assert run["shifts"], (run["directives"], run["manager_log"])
    first = run["shifts"][0]
    assert first["directive"]["target"] == "vm2", first
    assert first["from"] == "vm1"
    assert run["reaction_s"] is not None, run["shifts"]
    before, after = run["caps_before"], run["caps_after"]
    assert after["vm2"] > before["vm2"], (before, after)
    assert after["vm3"] < before["vm3"], (before, after)
    # The pool total never changes.
    assert sum(after.values()) == pytest.approx(sum(before.values()), abs=1e-5)


def test_cgroup_files_and_status_hold_the_new_caps(cluster3, run):
    parts = cluster3.partitions()
    for name, p in parts.items():
        quota, period = cap_file_quota(Path(p["capacity"]["cgroup"]))
        assert quota / period == pytest.approx(p["capacity"]["cap_cpus"], abs=1e-5)
        assert p["capacity"]["cap_cpus"] == pytest.approx(run["caps_after"][name], abs=1e-5)
    table = cluster3.partlink("status").stdout
    assert "S" in table and "CHART" in table, table


def test_manager_reports_reach_the_host_chart(cluster3, run, tmp_path):
    parts = cluster3.partitions()
    assert parts["vm2"]["chart"] is not None, parts["vm2"]
    out = tmp_path / "chart.png"
    cluster3.partlink("wlm", "chart", "--out", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
