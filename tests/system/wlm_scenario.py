"""The workload-management scenario of issue 4, shared by the system test
and `make demo-wlm`: vm1 runs the WLM manager, vm2 and vm3 run velocity
monitors and `plwlm serve`; after a warm-up at a light load, a load step on
vm2 (vm1 runs the load generator) should make the manager shift CPU from
vm3 to vm2.  Works on a `Cluster` of tests/system/conftest.py."""

import datetime
import json
import time

MANAGER_PORT = 7000
SERVE_PORT = 8000
# Rounds of `plwlm serve` work per request: tens of ms of guest CPU under
# TCG, so that serving, not the network or the load generator, is what the
# CPU cap limits.
WORK = 5000


def ip(vm):
    return f"10.77.0.{int(vm[2:])}"


def utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def caps_from_status(cluster):
    return {name: p["capacity"]["cap_cpus"] for name, p in cluster.partitions().items()}


def stop_guest_processes(cluster):
    for vm in ("vm1", "vm2", "vm3"):
        cluster.ssh(vm, "killall plwlm 2>/dev/null; true")


def start_workload(cluster, log=print):
    """serve and monitor on vm2 and vm3."""
    for vm in ("vm2", "vm3"):
        cluster.ssh(vm, f"plwlm serve --listen 0.0.0.0:{SERVE_PORT} --work {WORK} "
                        f">/tmp/serve.out 2>&1 &")
        cluster.ssh(vm, f"plwlm monitor --to {ip('vm1')}:{MANAGER_PORT} --interval 1 "
                        f"--partition {vm} --iface {cluster.data_if} >/tmp/monitor.out 2>&1 &")
    log("vm2, vm3: plwlm serve and plwlm monitor started")


def start_manager(cluster, dry_run, caps, duration, log=print):
    cap_args = " ".join(f"--cap {name}={cap:.5f}" for name, cap in sorted(caps.items()))
    mode = "--dry-run" if dry_run else ""
    cluster.ssh("vm1", f"rm -f /tmp/wlm.jsonl; plwlm manager --listen {ip('vm1')}:{MANAGER_PORT} "
                       f"--interval 1 {mode} {cap_args} --duration {duration} "
                       f"--log /tmp/wlm.jsonl >/tmp/manager.out 2>&1 &")
    log(f"vm1: plwlm manager {'--dry-run ' if dry_run else ''}started ({cap_args})")


# Requests/s of the background load, 5 s each, round and round: C must move
# for the velocity fit to be defined (a slope over a C that barely moves is
# undefined), and the charts warm up on defined velocities only.
VARYING_RATES = (4, 12, 24, 8, 16, 28, 6, 20)


def varying_load(cluster, vm, seconds):
    """Background load on vm's server, from vm1, stopping after `seconds`."""
    rounds = max(1, int(seconds // 5))
    rates = " ".join(str(VARYING_RATES[i % len(VARYING_RATES)]) for i in range(rounds))
    cluster.ssh("vm1", f"(for r in {rates}; do plwlm load --to {ip(vm)}:{SERVE_PORT} "
                       f"--connections 2 --rate $r --duration 5 >/dev/null 2>&1; done) "
                       f">/dev/null 2>&1 &")


def run_phase(cluster, dry_run, warmup=45, step=90, log=print):
    """One run: warm-up, load step on vm2, `step` seconds of it.  Returns
    what happened: the directives after the step, the reaction time, vm2's
    throughput per second, the caps before and after."""
    caps = caps_from_status(cluster)
    audit_before = len(audit_log(cluster))
    start_workload(cluster, log)
    start_manager(cluster, dry_run, caps, warmup + step + 10, log)
    varying_load(cluster, "vm2", warmup)
    varying_load(cluster, "vm3", warmup + step)
    log(f"warm-up: varying load on vm2 and vm3 for {warmup} s (the control charts learn)")
    time.sleep(warmup)

    log(f"load step on vm2: 4 connections, closed loop, {step} s")
    step_at = time.time()
    cluster.ssh("vm1", f"plwlm load --to {ip('vm2')}:{SERVE_PORT} --connections 4 "
                       f"--duration {step} --json >/tmp/load-vm2.jsonl 2>/tmp/load-vm2.err &")
    deadline = step_at + step + 15
    while time.time() < deadline:
        time.sleep(5)
        done = cluster.ssh("vm1", "grep -c summary /tmp/load-vm2.jsonl || true").stdout.strip()
        if done not in ("", "0"):
            break
    lines = cluster.ssh("vm1", "cat /tmp/load-vm2.jsonl").stdout.splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    per_second = [s["served"] for s in samples if "served" in s and "summary" not in s]
    directives = [r for r in audit_log(cluster)[audit_before:] if r["from"] == "vm1"]
    shifts = [r for r in directives if r["result"] in ("applied", "clamped")]
    reaction = None
    to_vm2 = [r for r in shifts if r["directive"]["target"] == "vm2" and utc(r["time"]) >= step_at]
    if to_vm2:
        reaction = utc(to_vm2[0]["time"]) - step_at
    stop_guest_processes(cluster)
    return {
        "dry_run": dry_run,
        "step_at": step_at,
        "per_second": per_second,
        "directives": directives,
        "shifts": shifts,
        "reaction_s": reaction,
        "caps_before": caps,
        "caps_after": caps_from_status(cluster),
        "manager_log": cluster.ssh("vm1", "tail -5 /tmp/manager.out").stdout,
    }


def audit_log(cluster):
    out = cluster.partlink("wlm", "log", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def throughput(per_second, last):
    tail = per_second[-last:]
    return sum(tail) / len(tail) if tail else 0.0
