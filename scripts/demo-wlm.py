#!/usr/bin/python3
"""make demo-wlm: the workload manager shifting CPU between partitions.

Boots three partitions.  vm1 runs the WLM manager, vm2 and vm3 run velocity
monitors and `plwlm serve` (CPU work per request).  The same scenario runs
twice on the same guests: first with the manager in --dry-run (it decides
and logs but asks for nothing), then for real.  Each run: a warm-up at a
light load, then a load step on vm2.  Prints the directives, the reaction
time from the step to the applied cap, the directives in the steady phase,
and vm2's served throughput against the dry run; draws the control chart.
Everything it started is stopped at the end, also on failure or Ctrl-C."""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "system"))
sys.path.insert(0, str(REPO / "tests"))

from conftest import PARTLINK, Cluster, kill_leftovers  # noqa: E402
import wlm_scenario  # noqa: E402
from termination import stop_cleanly_on_termination  # noqa: E402  (this directory)


def step(text):
    print(f"\n=== {text}", flush=True)


def reset_caps(cluster, caps):
    """Back to the entitlements before the second run: vm2 and vm1 to
    theirs, vm3 then holds the rest."""
    for vm in ("vm2", "vm1"):
        donor = "vm3"
        cluster.ssh("vm1", f"plwlm request --partition {vm} --cpu {caps[vm]:.5f} --donor {donor}")


def summary(result, steady_from):
    shifts = result["shifts"]
    steady = [r for r in shifts if wlm_scenario.utc(r["time"]) >= steady_from]
    return shifts, steady


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(REPO / "build" / "demo-wlm-run"))
    parser.add_argument("--warmup", type=int, default=45, help="seconds before the load step")
    parser.add_argument("--step", type=int, default=90, help="seconds of the load step")
    parser.add_argument("--last", type=int, default=30,
                        help="seconds at the end of the step over which throughput is averaged")
    args = parser.parse_args()
    stop_cleanly_on_termination()
    if not PARTLINK.exists():
        sys.exit(f"demo-wlm: {PARTLINK} missing: run 'make all'")

    cluster = Cluster(Path(args.run_dir))
    cluster.down()
    try:
        step("partlink up --vms 3 (default policy: an equal share each, vm1 is the WLM partition)")
        print(cluster.up("--vms", "3").stderr, end="")
        entitlements = wlm_scenario.caps_from_status(cluster)
        print(cluster.partlink("status").stdout)

        results = {}
        for dry_run in (True, False):
            name = "dry run" if dry_run else "manager on"
            step(f"{name}: warm-up {args.warmup} s, then a load step on vm2 for {args.step} s")
            if not dry_run:
                reset_caps(cluster, entitlements)
            results[dry_run] = wlm_scenario.run_phase(cluster, dry_run, args.warmup, args.step)
            r = results[dry_run]
            print(f"vm2 served per second: {r['per_second']}")
            print(f"caps before {r['caps_before']}\ncaps after  {r['caps_after']}")

        live, dry = results[False], results[True]
        step("partlink wlm log")
        print(cluster.partlink("wlm", "log").stdout)
        step("partlink status")
        print(cluster.partlink("status").stdout)
        chart = Path(args.run_dir) / "wlm-chart.png"
        cluster.partlink("wlm", "chart", "--out", chart)
        print(f"control chart: {chart}")

        step("result")
        shifts = live["shifts"]
        reaction = live["reaction_s"]
        settled = (wlm_scenario.utc(shifts[-1]["time"]) if shifts else live["step_at"])
        steady_window = live["step_at"] + args.step - settled
        first_settle = wlm_scenario.utc(shifts[0]["time"]) + 10 if shifts else live["step_at"]
        steady = [r for r in shifts if wlm_scenario.utc(r["time"]) > first_settle]
        t_live = wlm_scenario.throughput(live["per_second"], args.last)
        t_dry = wlm_scenario.throughput(dry["per_second"], args.last)
        ratio = t_live / t_dry if t_dry else float("nan")
        print(f"directives applied after the step: {len(shifts)} "
              f"({', '.join(r['directive']['target'] + ' ' + str(r['directive']['cpu']) for r in shifts)})")
        print(f"reaction time, load step to applied cap: "
              f"{'none' if reaction is None else f'{reaction:.1f} s'} (target <= 5 s)")
        print(f"directives more than 10 s after the first: {len(steady)} "
              f"(over {args.step - (first_settle - live['step_at']):.0f} s; target <= 1 in 60 s); "
              f"last shift {steady_window:.0f} s before the end")
        print(f"vm2 throughput, last {args.last} s of the step: dry run {t_dry:.1f}/s, "
              f"manager {t_live:.1f}/s")
        print(f"wlm/dry-run: throughput {ratio:.2f}x (target >= 1.3x)")
    finally:
        step("partlink down")
        cluster.down()
        kill_leftovers(cluster.run_dir)


if __name__ == "__main__":
    main()
