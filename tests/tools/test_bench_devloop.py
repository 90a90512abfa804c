"""scripts/bench-devloop.py's pure parts, which `make bench-devloop` runs on
the timings of real boots: median [min-max], the target verdicts, the table,
parsing `partlink driver reload`'s per-partition lines, the summary over
repetitions; and its argument checks, which refuse before booting."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
PYTHON = "/usr/bin/python3"

RELOAD_OUTPUT = """\
partlink: reloading /tmp/x/partlink.ko (srcversion B88CA1713F62D5843797F23) in 3 partitions
  vm1: partlink.ko B2FEA07CF97705BEF22542A -> B88CA1713F62D5843797F23 in 7.4 s (pl0 10.77.0.1/24 mtu 1500 carrier up)
  vm2: partlink.ko B2FEA07CF97705BEF22542A -> B88CA1713F62D5843797F23 in 7.3 s (pl0 10.77.0.2/24 mtu 1500 carrier up)
  vm3: partlink.ko B2FEA07CF97705BEF22542A -> B88CA1713F62D5843797F23 in 7.6 s (pl0 10.77.0.3/24 mtu 1500 carrier up)
"""


@pytest.fixture(scope="module")
def bd():
    sys.path.insert(0, str(SCRIPTS))  # it imports termination from there
    try:
        spec = importlib.util.spec_from_file_location("bench_devloop",
                                                      SCRIPTS / "bench-devloop.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_spread_and_its_format(bd):
    s = bd.spread([12.2, 8.6, 9.7])
    assert s == {"median": 9.7, "min": 8.6, "max": 12.2}
    assert bd.format_spread(s) == "9.7 s [8.6-12.2]"
    assert bd.spread([4.0, 6.0])["median"] == 5.0  # even count: the mean of the middle two
    assert bd.format_spread(bd.spread([4.84])) == "4.8 s [4.8-4.8]"
    with pytest.raises(ValueError):
        bd.spread([])


def test_verdict_goes_by_the_median(bd):
    assert bd.verdict(bd.spread([14.0, 15.0, 30.0]), 15.0) == "<= 15 s: ok"
    assert bd.verdict(bd.spread([15.1, 15.2, 1.0]), 15.0) == "<= 15 s: OVER"
    assert bd.verdict(bd.spread([1.0]), None) == ""


def test_parse_reload_lines(bd):
    lines = bd.parse_reload(RELOAD_OUTPUT)
    assert sorted(lines) == ["vm1", "vm2", "vm3"]
    assert lines["vm3"] == ("B2FEA07CF97705BEF22542A", "B88CA1713F62D5843797F23", 7.6)
    assert bd.parse_reload("partlink: no module at /x.ko; run `make driver` first\n") == {}


def test_summary_and_table(bd):
    reps = [{"loop_s": 12.2, "build_s": 5.5, "reload_s": 6.7, "run_s": 4.9},
            {"loop_s": 8.6, "build_s": 4.3, "reload_s": 4.3, "run_s": 9.0},
            {"loop_s": 9.7, "build_s": 5.6, "reload_s": 4.0, "run_s": 8.5}]
    stats = bd.summary(reps)
    assert set(stats) == {"loop_s", "build_s", "reload_s", "run_s"}
    table = bd.format_table(stats, 3).splitlines()
    assert "median [min-max] of 3 run(s)" in table[0]
    loop = next(line for line in table if line.startswith("A:"))
    run = next(line for line in table if line.startswith("B:"))
    assert "9.7 s [8.6-12.2]" in loop and loop.endswith("<= 15 s: ok")
    assert "8.5 s [4.9-9.0]" in run and run.endswith("<= 8 s: OVER")
    # rows without a target carry no verdict, and the order is the figures'
    assert not any("<=" in line for line in table if line.startswith("   "))
    assert [line[:2] for line in table[1:]] == ["A:", "  ", "  ", "B:"]


def test_arguments(bd):
    assert bd.parse_args([]).runs == 3
    assert bd.parse_args(["--quick"]).runs == 1
    assert bd.parse_args(["--quick", "--runs", "2"]).runs == 2
    assert bd.parse_args(["--runs", "5"]).runs == 5


@pytest.mark.parametrize("argv, message", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--runs", "x"], "invalid int value"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_are_refused_before_booting(argv, message):
    proc = subprocess.run([PYTHON, str(SCRIPTS / "bench-devloop.py"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
