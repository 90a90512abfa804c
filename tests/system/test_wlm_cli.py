"""`partlink wlm log` and `partlink wlm chart` on a run directory's logs as
partlinkd leaves them (synthetic here, so no guest boots): the table, the
JSON lines, warnings for torn lines, and a real PNG."""

import json
import struct

AUDIT = [
    {"time": "2026-11-25T09:23:01.123456Z", "from": "vm1",
     "directive": {"target": "vm2", "cpu": 1.5}, "result": "clamped",
     "reason": "vm2's max is 1 CPU",
     "changes": [{"partition": "vm2", "before": 0.66666, "after": 1.0},
                 {"partition": "vm3", "before": 0.66667, "after": 0.33333}],
     "verification": {"ok": True, "window_ms": 300, "partitions": []}},
    {"time": "2026-11-25T09:23:05.000000Z", "from": "vm2",
     "directive": {"target": "vm2", "cpu": 2}, "result": "refused",
     "reason": "vm2 may not send directives (the WLM partition is vm1)", "changes": []},
]


def chart_lines(seconds=20):
    lines = []
    for s in range(seconds):
        for vm in ("vm1", "vm2", "vm3"):
            lines.append(json.dumps({
                "time": f"2026-11-25T09:23:{s:02d}.000000Z", "from": "vm1", "partition": vm,
                "velocity": None if s < 2 else 1.0 + 0.01 * s, "trend": 1.0, "ewma": 1.05,
                "lower_limit": None if s < 5 else 0.8, "upper_limit": None if s < 5 else 1.3,
                "cpu": 0.4, "state": "warming-up" if s < 5 else "in-control"}))
    return "\n".join(lines) + "\n"


def write_audit(run_dir, torn=False):
    text = "".join(json.dumps(r) + "\n" for r in AUDIT)
    if torn:
        text += '{"time": "2026-11-25T09:24:00.000000Z", "from": "vm1", "direc'
    (run_dir / "wlm-audit.jsonl").write_text(text)


def test_log_table(new_cluster):
    c = new_cluster()
    write_audit(c.run_dir)
    proc = c.partlink("wlm", "log")
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert lines[0].split()[:4] == ["TIME", "FROM", "DIRECTIVE", "RESULT"], lines[0]
    assert "vm2 cpu 1.5" in lines[1] and "clamped" in lines[1], lines[1]
    assert "vm2 0.66666->1, vm3 0.66667->0.33333" in lines[1], lines[1]
    assert lines[1].endswith("vm2's max is 1 CPU")
    assert "refused" in lines[2] and "may not send directives" in lines[2], lines[2]
    assert proc.stderr == ""


def test_log_json_lines_and_a_torn_line(new_cluster):
    c = new_cluster()
    write_audit(c.run_dir, torn=True)
    proc = c.partlink("wlm", "log", "--json")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["result"] for r in records] == ["clamped", "refused"]
    assert records[0]["changes"][1]["partition"] == "vm3"
    assert "warning" in proc.stderr and "line 3" in proc.stderr, proc.stderr


def test_log_without_directives(new_cluster):
    c = new_cluster()
    (c.run_dir / "state.json").write_text("{}")  # as if up; not read by `wlm log`
    proc = c.partlink("wlm", "log")
    assert "no directives yet" in proc.stdout, proc.stdout
    assert c.partlink("wlm", "log", "--json").stdout == ""


def test_chart_draws_a_png(new_cluster, tmp_path):
    c = new_cluster()
    write_audit(c.run_dir)
    (c.run_dir / "wlm-chart.jsonl").write_text(chart_lines())
    out = tmp_path / "chart.png"
    proc = c.partlink("wlm", "chart", "--out", out)
    assert "vm1 (20 points" in proc.stdout and "vm3 (20 points" in proc.stdout, proc.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 500 and height > 500
    # The default place: the run directory.
    c.partlink("wlm", "chart")
    assert (c.run_dir / "wlm-chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_without_data(new_cluster):
    c = new_cluster()
    write_audit(c.run_dir)
    proc = c.partlink("wlm", "chart", check=False)
    assert proc.returncode == 1
    assert "no control chart data yet" in proc.stderr, proc.stderr
    (c.run_dir / "wlm-chart.jsonl").write_text('{"time": "bad"}\n' + chart_lines(1))
    proc = c.partlink("wlm", "chart", check=False)
    assert proc.returncode == 1
    assert "line 1" in proc.stderr and "could not draw the chart" in proc.stderr, proc.stderr
    assert not (c.run_dir / "wlm-chart.png").exists()
