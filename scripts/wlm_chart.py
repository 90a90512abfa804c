#!/usr/bin/python3
"""Draw the workload manager's control chart of every partition as a PNG.

`partlink wlm chart` runs this on a run directory's logs, both JSON lines
that partlinkd appends to:

  wlm-chart.jsonl  one line per REPORT from the WLM manager (null: undefined):
    {"time": "2026-11-25T09:23:01.123456Z", "from": "vm1", "partition": "vm2",
     "velocity": 1.12, "trend": 1.05, "ewma": 1.1, "lower_limit": 0.8,
     "upper_limit": 1.4, "cpu": 0.43, "state": "in-control"}
  wlm-audit.jsonl  one line per capacity directive (optional: none yet is fine)
    {"time": "...", "from": "vm1", "directive": {"target": "vm2", "cpu": 1.5},
     "result": "clamped", "changes": [{"partition": "vm2", ...}, ...], ...}

One subplot per partition: S (the velocity), its trend, the EWMA and the
control limits over time, points out of control highlighted, and a vertical
line at every applied or clamped directive that changed the partition's cap.

Exit status: 0 drawn, 1 bad or missing data, 2 bad command line.
"""

import argparse
import datetime
import json
import math
import os
import re
import sys
import tempfile

STATES = ("warming-up", "in-control", "low", "high")
VALUES = ("velocity", "trend", "ewma", "lower_limit", "upper_limit", "cpu")
MARKED_RESULTS = ("applied", "clamped")
MAX_PROBLEMS_SHOWN = 5

# "2026-11-25T09:23:01.123456Z", fraction optional.
TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")


class DataError(Exception):
    """Input that cannot be drawn; the message says which file and line."""


def parse_time(text):
    if not isinstance(text, str):
        raise ValueError("'time' is not a string")
    m = TIME_RE.match(text)
    if not m:
        raise ValueError(f"'time' {text!r} is not an ISO 8601 UTC time like "
                         "2026-11-25T09:23:01.123456Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0")[:6])
    return datetime.datetime(year, month, day, hour, minute, second, micro,
                             tzinfo=datetime.timezone.utc)


def read_lines(path):
    """(line number, text, terminated) of every non-blank line."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        terminated = i < len(lines) - 1
        if line.strip():
            out.append((i + 1, line, terminated))
    return out


def chart_point(line):
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    point = {"time": parse_time(doc.get("time"))}
    for key in ("from", "partition"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ValueError(f"'{key}' is missing or not a string")
        point[key] = doc[key]
    for key in VALUES:
        value = doc.get(key)
        if value is None:
            point[key] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            point[key] = float(value)
        else:
            raise ValueError(f"'{key}' is not a number or null")
    if doc.get("state") not in STATES:
        raise ValueError(f"'state' {doc.get('state')!r} is not one of {', '.join(STATES)}")
    point["state"] = doc["state"]
    return point


def read_chart_log(path, warn):
    """Points per partition.  A torn last line (partlinkd killed mid-write,
    or writing right now) is skipped with a warning; any other bad line is
    an error."""
    try:
        lines = read_lines(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: no control chart data yet") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    if not lines:
        raise DataError(f"{path} is empty: no control chart data yet")
    partitions = {}
    problems = []
    for number, line, terminated in lines:
        try:
            point = chart_point(line)
        except (ValueError, TypeError) as e:
            if not terminated and number == lines[-1][0]:
                warn(f"{path}: line {number}: skipped a torn last line ({e})")
                continue
            problems.append(f"line {number}: {e}")
            continue
        partitions.setdefault(point["partition"], []).append(point)
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise DataError(f"{path} has {len(problems)} bad line(s):\n  {shown}" +
                        (f"\n  ... and {more} more" if more > 0 else ""))
    if not partitions:
        raise DataError(f"{path} has no complete record: no control chart data yet")
    for points in partitions.values():
        points.sort(key=lambda p: p["time"])
    return partitions


def read_audit_log(path, warn):
    """(time, result, target, partitions whose cap changed) of every applied
    or clamped CPU directive; a missing log means no directives.  Memory
    directives (a balloon target) do not move S's CPU axis: not marked.
    Bad lines are warnings: the markers are an aid, the chart is what was
    asked for."""
    if not path:
        return []
    try:
        lines = read_lines(path)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    marks = []
    for number, line, _ in lines:
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            time = parse_time(doc.get("time"))
            result = doc.get("result")
            directive = doc.get("directive")
            if not isinstance(directive, dict) or not isinstance(directive.get("target"), str):
                raise ValueError("'directive.target' is missing")
            if "memory_mib" in directive:
                continue
            touched = {directive["target"]}
            for change in doc.get("changes") or []:
                if not isinstance(change, dict) or not isinstance(change.get("partition"), str):
                    raise ValueError("a change has no 'partition'")
                if change.get("before") != change.get("after"):
                    touched.add(change["partition"])
        except (ValueError, TypeError) as e:
            warn(f"{path}: line {number}: skipped ({e})")
            continue
        if result in MARKED_RESULTS:
            marks.append((time, result, directive["target"], touched))
    return marks


def partition_key(name):
    m = re.match(r"^vm(\d+)$", name)
    return (0, int(m.group(1)), "") if m else (1, 0, name)


def draw(partitions, marks, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise DataError(f"matplotlib is not available ({e}); install python3-matplotlib "
                        "(`make deps`)") from None

    names = sorted(partitions, key=partition_key)
    fig, axes = plt.subplots(len(names), 1, sharex=True, squeeze=False,
                             figsize=(11, 2.8 * len(names) + 0.8))
    colors = {"applied": "tab:green", "clamped": "tab:orange"}
    summary = []
    for ax, name in zip((row[0] for row in axes), names):
        points = partitions[name]
        t = [p["time"] for p in points]

        def series(key):
            return [p[key] for p in points]

        ax.step(t, series("upper_limit"), where="post", color="tab:red", linestyle=":",
                linewidth=1.2, label="control limits")
        ax.step(t, series("lower_limit"), where="post", color="tab:red", linestyle=":",
                linewidth=1.2)
        ax.plot(t, series("velocity"), color="tab:blue", marker=".", linewidth=0.8,
                label="S (velocity)")
        ax.plot(t, series("trend"), color="tab:gray", linestyle="--", linewidth=1.2,
                label="trend")
        ax.plot(t, series("ewma"), color="tab:purple", linewidth=1.6, label="EWMA")
        out_of_control = [p for p in points
                          if p["state"] in ("low", "high") and not math.isnan(p["velocity"])]
        if out_of_control:
            ax.scatter([p["time"] for p in out_of_control],
                       [p["velocity"] for p in out_of_control],
                       color="tab:red", zorder=5, s=28, label="out of control")
        mine = [m for m in marks if name in m[3]]
        for time, result, target, _ in mine:
            ax.axvline(time, color=colors[result], linewidth=1.4,
                       linestyle="-" if target == name else "--", alpha=0.8)
        ax.set_ylabel(f"{name}\nS")
        ax.grid(True, alpha=0.3)
        last = points[-1]
        ax.set_title(f"{name}: {len(points)} points, last state {last['state']}, "
                     f"{len(mine)} directive(s)", fontsize=9, loc="left")
        summary.append(f"{name} ({len(points)} points, {len(mine)} directive(s))")

    first = axes[0][0]
    from matplotlib.lines import Line2D
    handles, labels = first.get_legend_handles_labels()
    for result in MARKED_RESULTS:
        handles.append(Line2D([], [], color=colors[result], linewidth=1.4))
        labels.append(f"directive {result}")
    first.legend(handles, labels, fontsize=7, loc="upper left", ncol=3)
    bottom = axes[-1][0]
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=datetime.timezone.utc))
    bottom.set_xlabel("time (UTC)")
    fig.suptitle("partlink WLM control chart (S = dT/dC per partition)")
    fig.tight_layout()

    # Written next to the target, then renamed: a reader never sees half a PNG.
    directory = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".wlm-chart-", suffix=".png", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="wlm_chart.py",
        description="Draw the WLM control chart of every partition (S, trend, EWMA, control "
                    "limits, directives) from partlinkd's logs as a PNG.")
    parser.add_argument("--chart-log", required=True, metavar="FILE",
                        help="wlm-chart.jsonl of the run")
    parser.add_argument("--audit-log", metavar="FILE",
                        help="wlm-audit.jsonl of the run (missing: no directive markers)")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    args = parser.parse_args(argv)

    def warn(message):
        print(f"wlm_chart: warning: {message}", file=sys.stderr)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    try:
        if not os.path.isdir(out_dir):
            raise DataError(f"cannot write {args.out}: {out_dir} is not a directory")
        partitions = read_chart_log(args.chart_log, warn)
        marks = read_audit_log(args.audit_log, warn)
        summary = draw(partitions, marks, args.out)
    except DataError as e:
        print(f"wlm_chart: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"wlm_chart: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wlm_chart: wrote {args.out}: control charts of " + ", ".join(summary) +
          f"; {len(marks)} applied or clamped directive(s) in the audit log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
