#!/usr/bin/python3
"""make bench: measure guest-to-guest networking, the modes side by side.

Each network mode (default: partlink and virtio-tap) is booted --runs times
(default 3), interleaved (A B A B A B), so that a slow minute of the host
does not land on one mode only.  Every boot starts two guests with the same
memory, vCPUs and accelerator (`--accel auto` is resolved by the first boot
and then passed to every other) and measures, vm1 against vm2:

  * iperf3 TCP, 1 stream each direction (tcp_gbit: their mean) and 4 streams;
  * iperf3 UDP 64-byte packets, the rate delivered (udp64_kpps);
  * sockperf UDP ping-pong, 64 bytes: round-trip latency p50 and p99 (usec);
  * ping RTT over 100 pings (median, p99);
  * host CPU seconds per GB moved (cpu_s_per_gb): the whole host's busy CPU
    time (/proc/stat, all CPUs, total less idle and iowait) during the three
    TCP runs, over the GB they delivered;
  * partlink only, from `partlink status --json` after the measurements,
    over all the boot's traffic and summed over the partitions: copies/pkt
    (copies / rx_packets; 1.00 is one copy per packet), kicks/pkt
    (tx_kicks / tx_packets) and irqs/pkt (rx_interrupts / rx_packets).

Results go to build/bench/<time>/: <mode>-<run>.json (raw iperf3, sockperf,
ping and status output of one boot) and summary.json (every run's summary,
and median, min and max per metric and mode).  The output is a table,
"median [min-max]" per metric and mode, and the ratios of the medians of
every mode to the baseline's (virtio-tap), the partlink line last, for
scripts:

    partlink/virtio-tap: tcp 2.10x tcp4 2.30x udp64 1.60x lat 0.50x cpu/GB 0.45x copies/pkt 1.00

(lat: sockperf p50; cpu/GB: cpu_s_per_gb; copies/pkt: partlink's own median.)
Absolute numbers drift between machines; the ratios measured side by side
are what to compare.

The ipc part (skip it with --no-ipc) measures what two processes in two
partitions get: 64-byte message ping-pong latency (p50, p99) and the
throughput of 1 MiB messages, over TCP on the data network in every mode
(sockperf --tcp; iperf3 -l 1M), and, in the partlink boots, through a
shared segment (plmq ping/pong and bench-send/bench-recv on an 8 MiB
segment the boot's table gives vm1 and vm2).  Its ratio lines come last,
the segment against TCP over pl0 in the same boots, then against the
baseline's TCP:

    segment/tcp-virtio-tap: lat 0.06x p99 0.08x bw 5.0x
    segment/tcp-pl0: lat 0.08x p99 0.10x bw 4.0x
"""

import argparse
import json
import os
import re
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
SERVER_IP = "10.77.0.2"  # vm2: iperf3 -s runs there from boot, sockperf from start_sockperf
SOCKPERF_PORT = 11111
SOCKPERF_TCP_PORT = 11112
# The ipc part's segment: 8 MiB holds plmq's 1 MiB messages (two queues,
# a message at most half a ring).
IPC_SEGMENT = "ipc"
IPC_TABLE = {"segments": [{"name": IPC_SEGMENT, "size": "8M",
                           "partitions": {"vm1": {}, "vm2": {}}}]}
IPC_PINGS = 3000
IPC_MESSAGES = 256
# iperf3 flags of the TCP runs, whose host CPU time is measured.
TCP_RUNS = {"tcp_fwd": "", "tcp_rev": "-R", "tcp_4": "-P 4"}

# The table's rows: summary key, label, format.
METRICS = (
    ("tcp_gbit", "TCP 1 stream, Gbit/s", ".2f"),
    ("tcp_fwd_gbit", "  vm1->vm2", ".2f"),
    ("tcp_rev_gbit", "  vm2->vm1", ".2f"),
    ("tcp4_gbit", "TCP 4 streams, Gbit/s", ".2f"),
    ("udp64_kpps", "UDP 64 B delivered, kpps", ".1f"),
    ("lat_p50_us", "sockperf RTT p50, us", ".1f"),
    ("lat_p99_us", "sockperf RTT p99, us", ".1f"),
    ("rtt_median_ms", "ping RTT median, ms", ".3f"),
    ("rtt_p99_ms", "ping RTT p99, ms", ".3f"),
    ("cpu_s_per_gb", "host CPU s per GB (TCP)", ".2f"),
    ("copies_per_pkt", "copies/pkt", ".2f"),
    ("kicks_per_pkt", "kicks/pkt", ".3f"),
    ("irqs_per_pkt", "irqs/pkt", ".3f"),
    ("ipc_tcp_p50_us", "ipc: TCP ping-pong 64 B p50, us", ".1f"),
    ("ipc_tcp_p99_us", "ipc: TCP ping-pong 64 B p99, us", ".1f"),
    ("ipc_tcp_mibs", "ipc: TCP 1 MiB messages, MiB/s", ".1f"),
    ("ipc_seg_p50_us", "ipc: segment ping-pong 64 B p50, us", ".1f"),
    ("ipc_seg_p99_us", "ipc: segment ping-pong 64 B p99, us", ".1f"),
    ("ipc_seg_mibs", "ipc: segment 1 MiB messages, MiB/s", ".1f"),
)
# The ratio line: label, summary key.  copies/pkt follows, as a value.
RATIOS = (("tcp", "tcp_gbit"), ("tcp4", "tcp4_gbit"), ("udp64", "udp64_kpps"),
          ("lat", "lat_p50_us"), ("cpu/GB", "cpu_s_per_gb"))


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
        extra = []
        if self.mode == "partlink" and self.args.ipc:
            table = self.run_dir.parent / "ipc-segments.json"
            table.write_text(json.dumps(IPC_TABLE))
            extra = ["--segments", table]
        try:
            self.pl("up", "--vms", 2, "--net", self.mode, "--mem", self.args.mem,
                    "--cpus", self.args.cpus, "--accel", self.args.accel, *extra)
        except BaseException:
            self.pl("down", check=False)  # a failed up cleans up itself; make sure
            raise
        return self

    def __exit__(self, *exc):
        self.pl("down", check=False)

    def ssh(self, vm, command):
        return self.pl("ssh", vm, "--", command).stdout

    def iperf(self, extra):
        out = self.ssh("vm1", f"iperf3 -c {SERVER_IP} -J -t {self.args.seconds} {extra}")
        return json.loads(out)

    def start_sockperf(self, tcp=False):
        """sockperf's server on vm2, UDP port 11111 or TCP port 11112.  Its
        output goes to a file: a daemon that kept the session's stdout would
        hold ssh open."""
        port, table, flag = ((SOCKPERF_TCP_PORT, "tcp", "--tcp") if tcp else
                             (SOCKPERF_PORT, "udp", ""))
        hex_port = f"{port:04X}"
        log_file = f"/var/log/sockperf-{table}.log"
        self.ssh("vm2", f"sockperf server {flag} -i 0.0.0.0 -p {port} --no-rdtsc --daemonize"
                        f" >{log_file} 2>&1 </dev/null || exit 1;"
                        f" for i in 1 2 3 4 5 6 7 8 9 10; do"
                        f" grep -q ':{hex_port} ' /proc/net/{table} && exit 0; sleep 1; done;"
                        f" echo 'sockperf server does not listen:'; cat {log_file};"
                        " exit 1")

    def status(self):
        return json.loads(self.pl("status", "--json").stdout)


def cpu_busy_seconds(stat_text=None):
    """The host's busy CPU seconds since boot, all CPUs: the first line of
    /proc/stat, user nice system idle iowait irq softirq steal (guest and
    guest_nice are already in user and nice), less idle and iowait."""
    if stat_text is None:
        stat_text = Path("/proc/stat").read_text()
    first = stat_text.split("\n", 1)[0].split()
    if not first or first[0] != "cpu" or len(first) < 9:
        raise RuntimeError(f"/proc/stat: unexpected first line {' '.join(first)!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, first[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def measure(guests, seconds):
    result = {"host_cpu_s": {}}
    names = {"tcp_fwd": "TCP 1 stream vm1->vm2", "tcp_rev": "TCP 1 stream vm2->vm1",
             "tcp_4": "TCP 4 streams"}
    for key, flags in TCP_RUNS.items():
        log(f"{guests.mode}: {names[key]}, {seconds} s")
        before = cpu_busy_seconds()
        result[key] = guests.iperf(flags)
        result["host_cpu_s"][key] = cpu_busy_seconds() - before
    log(f"{guests.mode}: UDP 64-byte packets, {seconds} s")
    result["udp64"] = guests.iperf("-u -b 0 -l 64")
    log(f"{guests.mode}: sockperf ping-pong 64 bytes, {seconds} s")
    guests.start_sockperf()
    result["sockperf"] = guests.ssh(
        "vm1", f"sockperf ping-pong -i {SERVER_IP} -p {SOCKPERF_PORT} -t {seconds} -m 64"
               " --full-rtt --no-rdtsc 2>&1")
    log(f"{guests.mode}: 100 pings")
    result["ping"] = guests.ssh("vm1", f"ping -c 100 -i 0.05 {SERVER_IP}")
    if guests.args.ipc:
        result["ipc"] = measure_ipc(guests, seconds)
    # After the measurements, while the guests still run: the fabric's counters.
    result["status"] = guests.status()
    return result


def measure_ipc(guests, seconds):
    """Process to process between vm1 and vm2: TCP on the data network,
    and in partlink boots a shared segment."""
    ipc = {}
    log(f"{guests.mode}: ipc, TCP ping-pong 64 bytes, {seconds} s")
    guests.start_sockperf(tcp=True)
    ipc["tcp_pingpong"] = guests.ssh(
        "vm1", f"sockperf ping-pong --tcp -i {SERVER_IP} -p {SOCKPERF_TCP_PORT} -t {seconds}"
               " -m 64 --full-rtt --no-rdtsc 2>&1")
    log(f"{guests.mode}: ipc, TCP 1 MiB messages, {seconds} s")
    ipc["tcp_1m"] = guests.iperf("-l 1M")
    if guests.mode != "partlink":
        return ipc
    log(f"{guests.mode}: ipc, segment ping-pong 64 bytes, {IPC_PINGS} round trips")
    guests.ssh("vm2", f"plmq pong {IPC_SEGMENT} -t 120 >/var/log/plmq-pong.log 2>&1 "
                      "</dev/null &")
    ipc["seg_ping"] = json.loads(guests.ssh(
        "vm1", f"plmq ping {IPC_SEGMENT} -n {IPC_PINGS} -s 64 -t 120 --json"))
    log(f"{guests.mode}: ipc, segment 1 MiB messages, {IPC_MESSAGES} of them")
    guests.ssh("vm2", f"plmq bench-recv {IPC_SEGMENT} -t 120 --json >/tmp/plmq-recv.json "
                      "2>/var/log/plmq-recv.log </dev/null &")
    guests.ssh("vm1", f"plmq bench-send {IPC_SEGMENT} -n {IPC_MESSAGES} -s 1M -t 120 --json")
    received = guests.ssh(
        "vm2", "for i in $(seq 600); do [ -s /tmp/plmq-recv.json ] && "
               "! pidof plmq >/dev/null && break; sleep 0.1; done; cat /tmp/plmq-recv.json")
    if not received.strip():
        raise RuntimeError("plmq bench-recv in vm2 reported nothing: "
                           + guests.ssh("vm2", "cat /var/log/plmq-recv.log"))
    ipc["seg_bw"] = json.loads(received)
    return ipc


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
PERCENTILE = re.compile(r"--->\s+percentile\s+([0-9.]+)\s*=\s*([0-9.]+)")
EXTREME = re.compile(r"--->\s+<(MAX|MIN)>\s+observation\s*=\s*([0-9.]+)")


def parse_sockperf(text):
    """`sockperf ping-pong` output -> {"p50": usec, "p99": usec, ...}: every
    "percentile P = V" line as "p<P>" (p99.9 for 99.900), and min and max."""
    text = ANSI_ESCAPE.sub("", text)
    out = {}
    for pct, value in PERCENTILE.findall(text):
        out["p" + f"{float(pct):g}"] = float(value)
    for which, value in EXTREME.findall(text):
        out[which.lower()] = float(value)
    if "p50" not in out or "p99" not in out:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise RuntimeError(f"sockperf ping-pong printed no p50 and p99 latency:\n{tail}")
    return out


def parse_ping(text, sent=100):
    """ping's output -> the RTTs in ms; at least 90 % must have answered."""
    rtts = [float(t.split("=")[1]) for t in text.split() if t.startswith("time=")]
    if len(rtts) < 0.9 * sent:
        raise RuntimeError(f"only {len(rtts)} of {sent} pings answered:\n{text}")
    return rtts


def counter_total(parts, *names):
    """The sum over the partitions of the first counter in names that every
    partition has, or None if none is there."""
    for name in names:
        if all(name in p["counters"] for p in parts):
            return sum(p["counters"][name] for p in parts)
    return None


def fabric_per_packet(status):
    """copies/pkt, kicks/pkt and irqs/pkt from partlink's counters, summed
    over the partitions: copies and rx_interrupts over the packets received,
    tx_kicks over the packets sent."""
    parts = status["partitions"]
    missing = [p["name"] for p in parts if "counters" not in p]
    if missing or not parts:
        raise RuntimeError("partlink status --json has no counters for "
                           f"{', '.join(missing) or 'any partition'}")
    rx = counter_total(parts, "rx_packets")
    tx = counter_total(parts, "tx_packets")
    copies = counter_total(parts, "copies")
    if rx is None or tx is None or copies is None:
        raise RuntimeError("partlink status --json lacks rx_packets, tx_packets or copies: "
                           f"{sorted(parts[0]['counters'])}")
    if rx == 0 or tx == 0:
        raise RuntimeError("partlink: the fabric counted no packets sent or received; "
                           f"see {status['run_dir']}")
    out = {"copies_per_pkt": copies / rx}
    kicks = counter_total(parts, "tx_kicks", "kicks")
    if kicks is not None:
        out["kicks_per_pkt"] = kicks / tx
    irqs = counter_total(parts, "rx_interrupts", "interrupts")
    if irqs is not None:
        out["irqs_per_pkt"] = irqs / rx
    return out


def summarize(raw):
    """One boot's raw results -> its metrics (the keys of METRICS)."""
    def gbit(doc):
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9

    rtts = sorted(parse_ping(raw["ping"]))
    lat = parse_sockperf(raw["sockperf"])
    udp = raw["udp64"]["end"]["sum"]
    tcp_gb = sum(raw[k]["end"]["sum_received"]["bytes"] for k in TCP_RUNS) / 1e9
    if tcp_gb <= 0:
        raise RuntimeError("iperf3 TCP delivered no bytes")
    summary = {
        "tcp_gbit": (gbit(raw["tcp_fwd"]) + gbit(raw["tcp_rev"])) / 2,
        "tcp_fwd_gbit": gbit(raw["tcp_fwd"]),
        "tcp_rev_gbit": gbit(raw["tcp_rev"]),
        "tcp4_gbit": gbit(raw["tcp_4"]),
        "udp64_kpps": (udp["packets"] - udp["lost_packets"]) / udp["seconds"] / 1e3,
        "lat_p50_us": lat["p50"],
        "lat_p99_us": lat["p99"],
        "rtt_median_ms": statistics.median(rtts),
        "rtt_p99_ms": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
        "cpu_s_per_gb": sum(raw["host_cpu_s"][k] for k in TCP_RUNS) / tcp_gb,
    }
    if raw["status"].get("net") == "partlink":
        summary.update(fabric_per_packet(raw["status"]))
    if "ipc" in raw:
        summary.update(summarize_ipc(raw["ipc"]))
    return summary


def summarize_ipc(ipc):
    """The ipc part's raw results -> its metrics."""
    tcp = parse_sockperf(ipc["tcp_pingpong"])
    received = ipc["tcp_1m"]["end"]["sum_received"]
    out = {"ipc_tcp_p50_us": tcp["p50"], "ipc_tcp_p99_us": tcp["p99"],
           "ipc_tcp_mibs": received["bytes"] / received["seconds"] / 2**20}
    if "seg_ping" in ipc:
        ping, bw = ipc["seg_ping"], ipc["seg_bw"]
        if bw.get("errors"):
            raise RuntimeError(f"plmq bench-recv saw {bw['errors']} messages out of sequence")
        if bw.get("count", 0) < IPC_MESSAGES:
            raise RuntimeError(f"plmq bench-recv got {bw.get('count')} of {IPC_MESSAGES} "
                               "messages")
        out.update({"ipc_seg_p50_us": ping["p50_us"], "ipc_seg_p99_us": ping["p99_us"],
                    "ipc_seg_mibs": bw["mib_per_s"]})
    return out


def ipc_ratio_lines(stats_by_mode, base_mode):
    """The segment against TCP: the baseline's, then pl0's in the same boots
    (last, for scripts).  None without the ipc part."""
    seg = stats_by_mode.get("partlink", {})
    if "ipc_seg_p50_us" not in seg:
        return []
    lines = []
    for name, tcp in ((base_mode, stats_by_mode.get(base_mode, {})), ("pl0", seg)):
        if name == "partlink" or "ipc_tcp_p50_us" not in tcp:
            continue
        lines.append(
            f"segment/tcp-{name}: "
            f"lat {ratio(seg['ipc_seg_p50_us']['median'], tcp['ipc_tcp_p50_us']['median'])} "
            f"p99 {ratio(seg['ipc_seg_p99_us']['median'], tcp['ipc_tcp_p99_us']['median'])} "
            f"bw {ratio(seg['ipc_seg_mibs']['median'], tcp['ipc_tcp_mibs']['median'])}")
    return lines


def spread(runs):
    """A mode's run summaries -> {metric: {"median", "min", "max"}}, for
    every metric of any run (over the runs that have it)."""
    keys = [k for k, _, _ in METRICS if any(k in r for r in runs)]
    keys += sorted({k for r in runs for k in r} - set(keys))
    out = {}
    for k in keys:
        values = [r[k] for r in runs if k in r]
        out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def ratio(value, base):
    return f"{value / base:.2f}x" if base else "n/a"


def ratio_line(mode, base_mode, stats, base):
    """The medians of mode over base_mode's; then mode's copies/pkt, if any."""
    words = [f"{mode}/{base_mode}:"]
    for label, key in RATIOS:
        words += [label, ratio(stats[key]["median"], base[key]["median"])]
    if "copies_per_pkt" in stats:
        words += ["copies/pkt", f"{stats['copies_per_pkt']['median']:.2f}"]
    return " ".join(words)


def format_table(stats_by_mode):
    """'median [min-max]' per metric (rows) and mode (columns)."""
    modes = list(stats_by_mode)
    rows = [["", *modes]]
    for key, label, fmt in METRICS:
        if not any(key in s for s in stats_by_mode.values()):
            continue
        row = [label]
        for mode in modes:
            v = stats_by_mode[mode].get(key)
            row.append("-" if v is None else
                       f"{v['median']:{fmt}} [{v['min']:{fmt}}-{v['max']:{fmt}}]")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])
        for r in rows)


def ratio_lines(stats_by_mode, base_mode):
    """One line per mode but the baseline, partlink's last: scripts read it."""
    others = sorted((m for m in stats_by_mode if m != base_mode), key=lambda m: m == "partlink")
    return [ratio_line(m, base_mode, stats_by_mode[m], stats_by_mode[base_mode])
            for m in others]


def summary_doc(args, modes, base_mode, runs):
    """summary.json: the settings, every run's summary and the spread per mode."""
    stats = {m: spread(r) for m, r in runs.items() if r}
    doc = {"modes": modes, "baseline": base_mode, "runs": args.runs, "seconds": args.seconds,
           "accel": args.accel, "mem": args.mem, "cpus": args.cpus,
           "per_mode": {m: {"runs": runs[m], "stats": stats.get(m)} for m in modes}}
    if len(stats) == len(modes):
        doc["ratio_lines"] = ratio_lines(stats, base_mode) + ipc_ratio_lines(stats, base_mode)
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="partlink,virtio-tap",
                    help="comma-separated, booted in this order in every run "
                         "(default: %(default)s)")
    ap.add_argument("--baseline", default=BASELINE,
                    help="the mode the others are compared to (default: %(default)s; "
                         "the first mode if it is not among --modes)")
    ap.add_argument("--runs", type=int,
                    help="boots of each mode, interleaved (default: 3; 1 with --quick)")
    ap.add_argument("--seconds", type=int,
                    help="per iperf3 and sockperf run (default: 8; 3 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: --runs 1 --seconds 3 unless given")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--accel", default="auto")
    ap.add_argument("--no-ipc", dest="ipc", action="store_false",
                    help="leave out the ipc part (shared segment against TCP)")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.seconds is None:
        args.seconds = 3 if args.quick else 8
    if args.runs < 1 or args.seconds < 1:
        ap.error("--runs and --seconds must be at least 1")
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; modes: {', '.join(MODES)}")
    if len(set(modes)) != len(modes) or len(modes) < 2:
        ap.error("give at least two different modes: a baseline and one to compare")
    base_mode = args.baseline if args.baseline in modes else modes[0]
    if not PARTLINK.exists():
        sys.exit(f"bench: {PARTLINK} is missing: run 'make all'")
    stop_cleanly_on_termination()

    out_dir = REPO / "build" / "bench" / time.strftime("%Y%m%dT%H%M%S")
    out_dir.mkdir(parents=True)
    runs = {m: [] for m in modes}
    for i in range(1, args.runs + 1):
        for mode in modes:
            log(f"run {i} of {args.runs}: {mode}")
            with Guests(out_dir / f"run-{mode}-{i}", mode, args) as guests:
                if args.accel == "auto":
                    # Every mode on the accelerator the first boot chose.
                    args.accel = guests.status()["partitions"][0]["accel"]
                    log(f"accel {args.accel} for every mode")
                raw = measure(guests, args.seconds)
            (out_dir / f"{mode}-{i}.json").write_text(json.dumps(raw, indent=1))
            try:
                runs[mode].append(summarize(raw))
            except (RuntimeError, KeyError, ValueError) as e:
                what = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
                raise RuntimeError(f"{mode}, run {i}: {what}\n"
                                   f"raw results: {out_dir / f'{mode}-{i}.json'}") from e
            # Rewritten after every boot: a failed run keeps the ones before.
            (out_dir / "summary.json").write_text(
                json.dumps(summary_doc(args, modes, base_mode, runs), indent=1))

    stats = {m: spread(runs[m]) for m in modes}
    print(f"\nmedian [min-max] of {args.runs} run(s) per mode, {args.seconds} s each, "
          f"accel {args.accel}")
    print(format_table(stats))
    print(f"\nraw results: {out_dir}")
    for line in ratio_lines(stats, base_mode) + ipc_ratio_lines(stats, base_mode):
        print(line)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        sys.exit(f"bench: error: {e}")
