"""plwlm across partitions: monitors in vm2 and vm3 report over the data
network to a dry-run manager in vm1 (directives: test_wlm_directives.py,
the whole loop: test_wlm_load_step.py)."""

import json

PORT = 7077


def test_monitors_report_to_the_manager_over_the_data_network(cluster3):
    c = cluster3
    c.ssh("vm1", f"plwlm manager --listen 10.77.0.1:{PORT} --dry-run --interval 1 "
                 f"--duration 12 --log /tmp/wlm.jsonl >/tmp/manager.out 2>&1 &")
    for vm in ("vm2", "vm3"):
        c.ssh(vm, f"plwlm monitor --to 10.77.0.1:{PORT} --interval 1 --count 6 "
                  f"--iface {c.data_if} >/tmp/monitor.out 2>&1 &")
    # The manager stops by itself after --duration; wait for it.
    c.ssh("vm1", "while pidof plwlm >/dev/null; do sleep 0.5; done", timeout=60)
    out = c.ssh("vm1", "cat /tmp/manager.out").stdout
    assert "| vm2 " in out and "| vm3 " in out, out
    records = [json.loads(line) for line in c.ssh("vm1", "cat /tmp/wlm.jsonl").stdout.splitlines()]
    assert records, out
    reports = records[-1]["reports"]
    assert reports["accepted"] >= 8, reports
    assert reports["rejected"] == 0, reports
    assert {p["partition"] for p in records[-1]["partitions"]} == {"vm2", "vm3"}

