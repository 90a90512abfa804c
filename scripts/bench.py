#!/usr/bin/python3
"""make bench: measure guest-to-guest networking, every mode in the same run.

For each network mode (default: partlink, then virtio-tap), boot two guests
with the same memory, vCPUs and accelerator (`--accel auto` is resolved by
the first boot and then passed to every other), then measure with the same
tools: iperf3 TCP (1 stream, each direction; 4 streams), iperf3 UDP 64-byte
packet rate, ping RTT over 100 pings (median, p99).  For partlink, the
fabric's counters are read from `partlink status --json` after the
measurements: copies/pkt is the sum of copies over the sum of packets
received, over the partitions (1.00: one copy per packet).

Raw results go to build/bench/<time>/ as JSON; the output is a table and the
ratio of every mode to the baseline (virtio-tap), the partlink line last,
for scripts:

    partlink/virtio-tap: tcp 1.62x rtt 0.41x udp64 2.10x copies/pkt 1.00

Absolute numbers drift between machines; the ratios measured side by side
are what to compare.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from termination import stop_cleanly_on_termination  # this directory

REPO = Path(__file__).resolve().parents[1]
PARTLINK = REPO / "build" / "bin" / "partlink"
MODES = ("partlink", "virtio-tap", "virtio-socket")
BASELINE = "virtio-tap"


def log(msg):
    print(f"bench: {msg}", flush=True)


class Guests:
    def __init__(self, run_dir, mode, args):
        self.run_dir, self.mode, self.args = run_dir, mode, args

    def pl(self, *words, timeout=600, check=True):
        argv = [str(PARTLINK), "--run-dir", str(self.run_dir), *map(str, words)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        return proc

    def __enter__(self):
        try:
            self.pl("up", "--vms", 2, "--net", self.mode, "--mem", self.args.mem,
                    "--cpus", self.args.cpus, "--accel", self.args.accel)
        except BaseException:
            self.pl("down", check=False)  # a failed up cleans up itself; make sure
            raise
        return self

    def __exit__(self, *exc):
        self.pl("down", check=False)

    def iperf(self, extra):
        out = self.pl("ssh", "vm1", "--",
                      f"iperf3 -c 10.77.0.2 -J -t {self.args.seconds} {extra}").stdout
        return json.loads(out)

    def status(self):
        return json.loads(self.pl("status", "--json").stdout)


def measure(guests, seconds):
    result = {}
    log(f"{guests.mode}: TCP 1 stream vm1->vm2, {seconds} s")
    result["tcp_fwd"] = guests.iperf("")
    log(f"{guests.mode}: TCP 1 stream vm2->vm1, {seconds} s")
    result["tcp_rev"] = guests.iperf("-R")
    log(f"{guests.mode}: TCP 4 streams, {seconds} s")
    result["tcp_4"] = guests.iperf("-P 4")
    log(f"{guests.mode}: UDP 64-byte packets, {seconds} s")
    result["udp64"] = guests.iperf("-u -b 0 -l 64")
    log(f"{guests.mode}: 100 pings")
    out = guests.pl("ssh", "vm1", "--", "ping -c 100 -i 0.05 10.77.0.2").stdout
    rtts = [float(t.split("=")[1]) for t in out.split() if t.startswith("time=")]
    if len(rtts) < 90:
        raise RuntimeError(f"{guests.mode}: only {len(rtts)} of 100 pings answered:\n{out}")
    result["ping_ms"] = rtts
    # After the measurements, while the guests still run: the fabric's counters.
    result["status"] = guests.status()
    return result


def copies_per_packet(status):
    """Sum of copies over the sum of packets received, over the partitions."""
    parts = status["partitions"]
    missing = [p["name"] for p in parts if "counters" not in p]
    if missing:
        raise RuntimeError(f"partlink status --json has no counters for {', '.join(missing)}")
    copies = sum(p["counters"]["copies"] for p in parts)
    rx = sum(p["counters"]["rx_packets"] for p in parts)
    if rx == 0:
        raise RuntimeError("partlink: the fabric counted no packets received; "
                           f"see {status['run_dir']}")
    return copies / rx


def summarize(raw):
    def gbit(doc):
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9

    rtts = sorted(raw["ping_ms"])
    udp = raw["udp64"]["end"]["sum"]
    summary = {
        "tcp_gbit": (gbit(raw["tcp_fwd"]) + gbit(raw["tcp_rev"])) / 2,
        "tcp4_gbit": gbit(raw["tcp_4"]),
        "udp64_kpps": (udp["packets"] - udp["lost_packets"]) / udp["seconds"] / 1e3,
        "rtt_median_ms": statistics.median(rtts),
        "rtt_p99_ms": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
    }
    if raw["status"].get("net") == "partlink":
        summary["copies_per_pkt"] = copies_per_packet(raw["status"])
    return summary


def ratio_line(mode, base_mode, s, base):
    line = (f"{mode}/{base_mode}: tcp {s['tcp_gbit'] / base['tcp_gbit']:.2f}x "
            f"rtt {s['rtt_median_ms'] / base['rtt_median_ms']:.2f}x "
            f"udp64 {s['udp64_kpps'] / base['udp64_kpps']:.2f}x")
    if "copies_per_pkt" in s:
        line += f" copies/pkt {s['copies_per_pkt']:.2f}"
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="partlink,virtio-tap",
                    help="comma-separated, booted in this order (default: %(default)s)")
    ap.add_argument("--baseline", default=BASELINE,
                    help="the mode the others are compared to (default: %(default)s; "
                         "the first mode if it is not among --modes)")
    ap.add_argument("--seconds", type=int, default=10, help="per iperf3 run (default: 10)")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--accel", default="auto")
    args = ap.parse_args()
    stop_cleanly_on_termination()
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; modes: {', '.join(MODES)}")
    if len(set(modes)) < 2:
        ap.error("give at least two modes: a baseline and one to compare")
    base_mode = args.baseline if args.baseline in modes else modes[0]
    if not PARTLINK.exists():
        sys.exit(f"bench: {PARTLINK} is missing: run 'make all'")

    out_dir = REPO / "build" / "bench" / time.strftime("%Y%m%dT%H%M%S")
    out_dir.mkdir(parents=True)
    summary = {}
    for mode in modes:
        with Guests(out_dir / f"run-{mode}", mode, args) as guests:
            if args.accel == "auto":
                # Every mode on the accelerator the first boot chose.
                args.accel = guests.status()["partitions"][0]["accel"]
                log(f"accel {args.accel} for every mode")
            raw = measure(guests, args.seconds)
        (out_dir / f"{mode}.json").write_text(json.dumps(raw, indent=1))
        summary[mode] = summarize(raw)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))

    cols = ["tcp_gbit", "tcp4_gbit", "udp64_kpps", "rtt_median_ms", "rtt_p99_ms"]
    print(f"\n{'mode':<15}" + "".join(f"{c:>15}" for c in cols) + f"{'copies/pkt':>15}")
    for mode, s in summary.items():
        copies = f"{s['copies_per_pkt']:>15.2f}" if "copies_per_pkt" in s else f"{'-':>15}"
        print(f"{mode:<15}" + "".join(f"{s[c]:>15.3f}" for c in cols) + copies)
    print(f"\nraw results: {out_dir}")
    # partlink's line last: scripts read the last line.
    others = sorted((m for m in modes if m != base_mode), key=lambda m: m == "partlink")
    for mode in others:
        print(ratio_line(mode, base_mode, summary[mode], summary[base_mode]))


if __name__ == "__main__":
    main()
