#!/usr/bin/python3
"""make bench-devloop: how long the kernel-developer loop takes.

Two figures, each measured --runs times (default 3; 1 with --quick),
interleaved (A B A B A B), reported as median [min-max]:

  A  edit -> `make driver && partlink driver reload`, for 3 running
     partitions (target <= 15 s).  The partitions are booted once
     (`partlink up --vms 3`, the image's kernel, a private run directory);
     then each repetition makes a real edit to partlink_main.c (a
     `MODULE_INFO(partlink_bench, "<new value>")` line, so the source and the
     module's srcversion change) and times scripts/build-driver.sh -- the
     script `make driver` runs -- followed by `partlink driver reload
     --module` of what it built.  So as not to edit the repository, the edit
     and the build happen in a scratch tree: a copy of scripts/build-driver.sh
     next to copies of guest-driver/kernel/ and include/partlink/ (the script
     builds the sources beside it), with a build directory of its own that is
     built once, untimed, before the first repetition; each repetition thus
     recompiles partlink_main.c and relinks, as `make driver` does after an
     edit of one file.  Checked: every partition's
     /sys/module/partlink/srcversion becomes the new module's.
  B  `partlink run -- uname -r`, wall time (target <= 8 s): boot one
     partition in a private run directory, run the command, tear down.
     It runs beside A's 3 idle partitions, as it would beside a developer's
     `partlink up`.  Checked: stdout is the image's kernel release.

Prints a table and writes every repetition's numbers, the medians and the
method to build/bench/devloop-<time>.json.  The partitions are always shut
down, also on failure or Ctrl-C.  Exit status 0 when measured (whether or
not the targets were met: the table says), 1 on an error.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from termination import stop_cleanly_on_termination  # this directory
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from procs import kill_partlinkds, kill_qemus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
PARTLINK = BUILD / "bin" / "partlink"
VMS = 3
EDITED = "partlink_main.c"

# Figure key -> label, target in seconds (None: no target).
FIGURES = (
    ("loop_s", "A: edit -> make driver && driver reload (3 partitions)", 15.0),
    ("build_s", "   make driver (build-driver.sh, 1 file changed)", None),
    ("reload_s", "   partlink driver reload (3 partitions)", None),
    ("reload_vm_max_s", "   slowest partition's reload, as reported", None),
    ("run_s", "B: partlink run -- uname -r", 8.0),
)

RELOAD_LINE = re.compile(r"^  (vm\d+): partlink\.ko (\w+) -> (\w+) in ([\d.]+) s", re.M)
BUILT_LINE = re.compile(r"srcversion (\w+), ([\d.]+) s\)")


def log(msg):
    print(f"bench-devloop: {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int,
                    help="repetitions of each figure, interleaved (default: 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --runs 1 unless given")
    ap.add_argument("--out-dir", type=Path, default=BUILD / "bench",
                    help="where devloop-<time>.json goes (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def spread(values):
    """[seconds] -> {"median", "min", "max"}."""
    if not values:
        raise ValueError("no values")
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def format_spread(s):
    """'12.3 s [11.9-13.0]'."""
    return f"{s['median']:.1f} s [{s['min']:.1f}-{s['max']:.1f}]"


def verdict(s, target):
    """Whether the median meets the target: '' without one."""
    if target is None:
        return ""
    return f"<= {target:g} s: " + ("ok" if s["median"] <= target else "OVER")


def format_table(stats, runs):
    """One row per figure in stats: label, median [min-max], target verdict."""
    rows = [(label, format_spread(stats[key]), verdict(stats[key], target))
            for key, label, target in FIGURES if key in stats]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    head = f"median [min-max] of {runs} run(s)"
    lines = [f"{'':{w0}}  {head}"]
    lines += [f"{a:{w0}}  {b:{w1}}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)


def parse_reload(text):
    """`driver reload` output -> {vm: (old, new, seconds)}."""
    return {m[0]: (m[1], m[2], float(m[3])) for m in RELOAD_LINE.findall(text)}


def summary(reps):
    """Each repetition's figures -> {figure: spread}, for the figures present."""
    keys = [k for k, _, _ in FIGURES if any(k in r for r in reps)]
    return {k: spread([r[k] for r in reps if k in r]) for k in keys}


# ---------------------------------------------------------------- measuring

def kill_own(marker):
    for pid in kill_qemus(marker) + kill_partlinkds(marker):
        log(f"killed pid {pid}, left behind in {marker}")


def sh(argv, timeout=600, env=None):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc


class Loop:
    """The scratch tree, the 3 partitions and the measurements."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.run_dir = scratch / "run"
        self.tree = scratch / "tree"
        self.build_dir = scratch / "build"
        self.tmpdir = scratch / "tmp"  # partlink run's private run directories
        self.tmpdir.mkdir()
        self.release = (BUILD / "images" / "kernel-release").read_text().strip()
        self.original = (REPO / "guest-driver" / "kernel" / EDITED).read_text()

    def pl(self, *words, timeout=600):
        return sh([PARTLINK, "--run-dir", self.run_dir, *words], timeout=timeout)

    def up(self):
        log(f"booting {VMS} partitions in {self.run_dir}")
        started = time.monotonic()
        self.pl("up", "--vms", VMS)
        self.boot_s = time.monotonic() - started
        kdir_file = self.run_dir / "kdir"
        self.kdir = (kdir_file.read_text().strip() if kdir_file.is_file()
                     else f"/usr/src/linux-headers-{self.release}")

    def down(self):
        subprocess.run([str(PARTLINK), "--run-dir", str(self.run_dir), "down"],
                       capture_output=True, timeout=180)
        kill_own(self.scratch)

    def prepare_tree(self):
        """The scratch tree, and its first (untimed, full) build."""
        (self.tree / "scripts").mkdir(parents=True)
        shutil.copy2(REPO / "scripts" / "build-driver.sh", self.tree / "scripts")
        shutil.copytree(REPO / "guest-driver" / "kernel", self.tree / "guest-driver" / "kernel")
        shutil.copytree(REPO / "include" / "partlink", self.tree / "include" / "partlink")
        started = time.monotonic()
        self.build()
        self.first_build_s = time.monotonic() - started
        log(f"first (full) build of partlink.ko for {self.release}: {self.first_build_s:.1f} s")

    def build(self):
        out = sh([self.tree / "scripts" / "build-driver.sh", "--build-dir", self.build_dir,
                  "--kdir", self.kdir]).stdout
        return out

    def loop_once(self, i):
        """A: edit, build, reload; returns the figures and checks the result."""
        stamp = f"{i}-{time.time_ns()}"
        (self.tree / "guest-driver" / "kernel" / EDITED).write_text(
            self.original + f'MODULE_INFO(partlink_bench, "{stamp}");\n')
        ko = self.build_dir / "driver" / self.release / "partlink.ko"
        t0 = time.monotonic()
        built = self.build()
        t1 = time.monotonic()
        reload = self.pl("driver", "reload", "--module", ko)
        t2 = time.monotonic()
        m = BUILT_LINE.search(built)
        if not m:
            raise RuntimeError(f"build-driver.sh printed no srcversion:\n{built}")
        new = m.group(1)
        lines = parse_reload(reload.stdout)
        if sorted(lines) != [f"vm{n}" for n in range(1, VMS + 1)] or \
                any(to != new for _, to, _ in lines.values()):
            raise RuntimeError(f"reload did not put srcversion {new} in every partition:\n"
                               f"{reload.stdout}{reload.stderr}")
        for vm in lines:
            got = self.pl("ssh", vm, "--", "cat /sys/module/partlink/srcversion").stdout.strip()
            if got != new:
                raise RuntimeError(f"{vm} runs srcversion {got}, expected {new}")
        return {"loop_s": t2 - t0, "build_s": t1 - t0, "reload_s": t2 - t1,
                "reload_vm_max_s": max(s for _, _, s in lines.values()),
                "build_script_s": float(m.group(2)), "srcversion": new,
                "reload_vm_s": {vm: s for vm, (_, _, s) in lines.items()}}

    def one_shot(self):
        """B: `partlink run -- uname -r`, wall time."""
        t0 = time.monotonic()
        try:
            proc = sh([PARTLINK, "run", "--", "uname", "-r"], timeout=600,
                      env={**os.environ, "TMPDIR": str(self.tmpdir)})
        finally:
            kill_own(self.tmpdir)
        elapsed = time.monotonic() - t0
        if proc.stdout.strip() != self.release:
            raise RuntimeError(f"partlink run -- uname -r printed {proc.stdout!r}, "
                               f"expected {self.release}")
        return {"run_s": elapsed}


def main():
    args = parse_args()
    for p in (PARTLINK, BUILD / "images" / "kernel-release"):
        if not p.exists():
            sys.exit(f"bench-devloop: {p} is missing: run 'make all'")
    stop_cleanly_on_termination()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_file = args.out_dir / f"devloop-{stamp}.json"
    reps = []
    # A short path: the run directory holds unix sockets.
    with tempfile.TemporaryDirectory(prefix="pl-bench-") as scratch:
        loop = Loop(Path(scratch))
        try:
            loop.up()
            loop.prepare_tree()
            for i in range(1, args.runs + 1):
                log(f"run {i} of {args.runs}: A (edit, make driver, reload {VMS} partitions)")
                rep = loop.loop_once(i)
                log(f"  {rep['loop_s']:.1f} s (build {rep['build_s']:.1f} s, "
                    f"reload {rep['reload_s']:.1f} s)")
                log(f"run {i} of {args.runs}: B (partlink run -- uname -r)")
                rep.update(loop.one_shot())
                log(f"  {rep['run_s']:.1f} s")
                reps.append(rep)
        finally:
            log("shutting the partitions down")
            loop.down()

    stats = summary(reps)
    doc = {"time": stamp, "runs": args.runs, "vms": VMS, "release": loop.release,
           "kdir": loop.kdir, "boot_s": loop.boot_s, "first_build_s": loop.first_build_s,
           "loadavg_at_end": os.getloadavg(), "nproc": os.cpu_count(),
           "method": {"A": "edit partlink_main.c (a new MODULE_INFO value) in a scratch copy "
                           "of guest-driver/kernel beside a copy of scripts/build-driver.sh; "
                           "time build-driver.sh (what `make driver` runs, incremental, "
                           "persistent build dir) + `partlink driver reload --module` into "
                           f"{VMS} running partitions",
                      "B": "wall time of `partlink run -- uname -r` (1 partition, private "
                           f"run dir), beside A's {VMS} idle partitions"},
           "targets_s": {k: t for k, _, t in FIGURES if t is not None},
           "repetitions": reps, "stats": stats}
    out_file.write_text(json.dumps(doc, indent=1))
    print(f"partitions booted once in {loop.boot_s:.1f} s; first full build "
          f"{loop.first_build_s:.1f} s (untimed); kernel {loop.release}")
    print("A edits partlink_main.c in a scratch copy and runs build-driver.sh "
          "(what `make driver` runs) there")
    print(format_table(stats, args.runs))
    print(f"results: {out_file}")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        sys.exit(f"bench-devloop: {e}")
