"""scripts/wlm_chart.py, which `partlink wlm chart` runs, on synthetic logs:
it writes a real PNG from good data and refuses missing, empty or broken
data with a message that names the file and line."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "wlm_chart.py"
# Debian's Python, which has python3-matplotlib (scripts/deps.sh).
PYTHON = "/usr/bin/python3"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chart_line(second, partition, velocity=1.0, state="in-control", **extra):
    doc = {"time": f"2026-11-25T09:23:{second:02d}.123456Z", "from": "vm1",
           "partition": partition, "velocity": velocity, "trend": 1.0, "ewma": 1.02,
           "lower_limit": 0.8, "upper_limit": 1.3, "cpu": 0.43, "state": state}
    doc.update(extra)
    return json.dumps(doc)


def audit_line(second, target, result="applied"):
    return json.dumps({
        "time": f"2026-11-25T09:23:{second:02d}.500000Z", "from": "vm1",
        "directive": {"target": target, "cpu": 1.5}, "result": result, "reason": "",
        "changes": [{"partition": target, "before": 0.66666, "after": 1.0},
                    {"partition": "vm1", "before": 0.66667, "after": 0.33333}]})


def good_chart():
    lines = []
    for s in range(30):
        for vm in ("vm1", "vm2", "vm3"):
            velocity = None if s < 3 else 1.0 + 0.02 * (s % 7) - (0.5 if s > 20 and vm == "vm2"
                                                                  else 0)
            state = "warming-up" if s < 5 else ("low" if s > 20 and vm == "vm2" else "in-control")
            lines.append(chart_line(s, vm, velocity, state,
                                    **({"lower_limit": None, "upper_limit": None,
                                        "ewma": None, "trend": None} if s < 5 else {})))
    return "\n".join(lines) + "\n"


def run(tmp_path, chart=None, audit=None, out=None, extra=()):
    chart_file = tmp_path / "wlm-chart.jsonl"
    audit_file = tmp_path / "wlm-audit.jsonl"
    if chart is not None:
        chart_file.write_text(chart)
    if audit is not None:
        audit_file.write_text(audit)
    out = out or tmp_path / "chart.png"
    argv = [PYTHON, str(SCRIPT), "--chart-log", str(chart_file), "--audit-log", str(audit_file),
            "--out", str(out), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120), out


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"
    return width, height


@pytest.fixture(scope="module", autouse=True)
def matplotlib_installed():
    proc = subprocess.run([PYTHON, "-c", "import matplotlib"], capture_output=True, text=True)
    if proc.returncode != 0:
        # Not a skip: the chart is a feature, its library a declared dependency.
        pytest.fail("python3-matplotlib is missing; run `make deps`", pytrace=False)


def memory_audit_line(second, target, mib=384):
    return json.dumps({
        "time": f"2026-11-25T09:23:{second:02d}.700000Z", "from": "vm1",
        "directive": {"target": target, "memory_mib": mib}, "result": "applied", "reason": "",
        "changes": [], "verification": None,
        "memory": {"before_mib": 512, "target_mib": mib, "actual_mib": mib, "reached": True,
                   "window_ms": 700}})


def test_draws_a_png_with_one_subplot_per_partition(tmp_path):
    # The memory directive is no CPU marker: still 2.
    audit = audit_line(10, "vm2") + "\n" + audit_line(22, "vm2", "clamped") + "\n" + \
        audit_line(25, "vm3", "refused") + "\n" + memory_audit_line(26, "vm2") + "\n"
    proc, out = run(tmp_path, good_chart(), audit)
    assert proc.returncode == 0, proc.stderr
    width, height = png_size(out)
    assert width > 500 and height > 3 * 200
    assert "vm1 (30 points" in proc.stdout and "vm3 (30 points" in proc.stdout, proc.stdout
    assert "2 applied or clamped directive(s)" in proc.stdout, proc.stdout
    assert proc.stderr == ""
    assert not list(tmp_path.glob(".wlm-chart-*")), "temporary file left behind"


def test_without_an_audit_log_there_are_no_markers(tmp_path):
    proc, out = run(tmp_path, good_chart())
    assert proc.returncode == 0, proc.stderr
    png_size(out)
    assert "0 applied or clamped" in proc.stdout


def test_only_undefined_values_still_draw(tmp_path):
    chart = "\n".join(chart_line(s, "vm1", None, "warming-up", trend=None, ewma=None,
                                 lower_limit=None, upper_limit=None, cpu=None)
                      for s in range(3)) + "\n"
    proc, out = run(tmp_path, chart)
    assert proc.returncode == 0, proc.stderr
    png_size(out)


def test_replaces_an_existing_picture(tmp_path):
    out = tmp_path / "chart.png"
    out.write_bytes(b"old")
    proc, out = run(tmp_path, good_chart(), out=out)
    assert proc.returncode == 0, proc.stderr
    png_size(out)


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path):
    chart = good_chart() + chart_line(31, "vm1")[:40]
    proc, out = run(tmp_path, chart)
    assert proc.returncode == 0, proc.stderr
    assert "torn last line" in proc.stderr and f"line {30 * 3 + 1}" in proc.stderr, proc.stderr
    png_size(out)


def test_a_bad_audit_line_is_a_warning(tmp_path):
    proc, out = run(tmp_path, good_chart(), audit_line(10, "vm2") + "\n{oops\n")
    assert proc.returncode == 0, proc.stderr
    assert "wlm-audit.jsonl: line 2: skipped" in proc.stderr, proc.stderr
    assert "1 applied or clamped" in proc.stdout


@pytest.mark.parametrize("chart, words", [
    (None, "does not exist"),
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("{not json", "no complete record"),
    (chart_line(1, "vm1") + "\n{not json\n" + chart_line(2, "vm1") + "\n", "line 2"),
    (chart_line(1, "vm1", state="sideways") + "\n", "'state'"),
    (chart_line(1, "vm1", velocity="fast") + "\n", "'velocity'"),
    (chart_line(1, "vm1", time="yesterday") + "\n", "'time'"),
    (json.dumps({"time": "2026-11-25T09:23:01Z"}) + "\n", "'from'"),
    ("[1, 2]\n", "not a JSON object"),
])
def test_refuses_bad_chart_data(tmp_path, chart, words):
    proc, out = run(tmp_path, chart)
    assert proc.returncode == 1, proc
    assert "wlm_chart: error: " in proc.stderr, proc.stderr
    assert words in proc.stderr, proc.stderr
    assert "wlm-chart.jsonl" in proc.stderr, proc.stderr
    assert not out.exists()
    assert "Traceback" not in proc.stderr


def test_refuses_an_output_directory_that_does_not_exist(tmp_path):
    proc, _ = run(tmp_path, good_chart(), out=tmp_path / "no" / "such" / "chart.png")
    assert proc.returncode == 1
    assert "is not a directory" in proc.stderr, proc.stderr


def test_command_line_errors_exit_2(tmp_path):
    proc = subprocess.run([PYTHON, str(SCRIPT), "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--chart-log" in proc.stderr


def test_runs_under_this_interpreter_too():
    """The module imports without matplotlib (it is needed only to draw)."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "--chart-log" in proc.stdout
