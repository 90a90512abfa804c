"""scripts/bench.py's pure functions, which `make bench` runs on the results
of real boots: sockperf, ping and /proc/stat parsing, one boot's summary,
the spread over runs, the table and the ratio line scripts read; and its
argument checks, which refuse before booting anything.

data/sockperf-ping-pong.txt is real output, captured on the host with
    sockperf server -i 0.0.0.0 -p 11111 --no-rdtsc --daemonize
    sockperf ping-pong -i 127.0.0.1 -p 11111 -t 2 -m 64 --full-rtt --no-rdtsc
(sockperf 3.7; it colours some lines even into a file), and
data/sockperf-ping-pong-no-server.txt the same client with no server (exit
status 0 all the same)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
DATA = Path(__file__).resolve().parent / "data"
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPTS))  # bench imports termination from there
    try:
        spec = importlib.util.spec_from_file_location("bench", SCRIPTS / "bench.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def iperf_tcp(gbit, seconds=8.0):
    return {"end": {"sum_received": {"bits_per_second": gbit * 1e9,
                                     "bytes": gbit * 1e9 / 8 * seconds, "seconds": seconds}}}


def iperf_udp(packets, lost, seconds=8.0):
    return {"end": {"sum": {"packets": packets, "lost_packets": lost, "seconds": seconds}}}


def ping_text(rtts):
    lines = ["PING 10.77.0.2 (10.77.0.2): 56 data bytes"]
    lines += [f"64 bytes from 10.77.0.2: seq={i} ttl=64 time={t:.3f} ms"
              for i, t in enumerate(rtts)]
    lines += ["", "--- 10.77.0.2 ping statistics ---",
              f"100 packets transmitted, {len(rtts)} packets received"]
    return "\n".join(lines) + "\n"


def partition(name, **counters):
    base = {"tx_packets": 0, "tx_bytes": 0, "rx_packets": 0, "rx_bytes": 0, "copies": 0,
            "tx_kicks": 0, "rx_interrupts": 0}
    base.update(counters)
    return {"name": name, "state": "running", "counters": base}


def partlink_status():
    return {"run_dir": "/tmp/run", "net": "partlink", "partitions": [
        partition("vm1", tx_packets=1000, rx_packets=600, copies=600, tx_kicks=250,
                  rx_interrupts=60),
        partition("vm2", tx_packets=600, rx_packets=1000, copies=1000, tx_kicks=150,
                  rx_interrupts=100)]}


def raw_run(tcp=(2.0, 4.0, 6.0), cpu=(8.0, 8.0, 8.0), status=None):
    fwd, rev, four = tcp
    return {
        "tcp_fwd": iperf_tcp(fwd), "tcp_rev": iperf_tcp(rev), "tcp_4": iperf_tcp(four),
        "host_cpu_s": dict(zip(("tcp_fwd", "tcp_rev", "tcp_4"), cpu)),
        "udp64": iperf_udp(410_000, 10_000),
        "sockperf": (DATA / "sockperf-ping-pong.txt").read_text(),
        "ping": ping_text([1.0 + i / 100 for i in range(100)]),
        "status": status or {"run_dir": "/tmp/run", "net": "virtio-tap", "partitions": []},
    }


def stats_of(**medians):
    return {k: {"median": v, "min": v, "max": v} for k, v in medians.items()}


def test_parses_sockperf_percentiles_in_usec(bench):
    lat = bench.parse_sockperf((DATA / "sockperf-ping-pong.txt").read_text())
    assert lat["p50"] == 17.433
    assert lat["p99"] == 94.058
    assert lat["p99.9"] == 1819.577
    assert lat["p99.999"] == 8035.569
    assert lat["p25"] == 17.272
    assert lat["max"] == 8035.569 and lat["min"] == 16.240


def test_sockperf_without_answers_is_an_error_that_shows_why(bench):
    with pytest.raises(RuntimeError, match="no p50 and p99") as err:
        bench.parse_sockperf((DATA / "sockperf-ping-pong-no-server.txt").read_text())
    assert "Is the server down?" in str(err.value)


def test_ping_needs_nine_tenths_of_the_answers(bench):
    assert bench.parse_ping(ping_text([0.5] * 90)) == [0.5] * 90
    with pytest.raises(RuntimeError, match="only 89 of 100 pings"):
        bench.parse_ping(ping_text([0.5] * 89))


def test_cpu_busy_seconds_leaves_out_idle_iowait_and_guest_time(bench):
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  1000 20 300 9000 500 4 6 70 800 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert bench.cpu_busy_seconds(stat) == pytest.approx((1000 + 20 + 300 + 4 + 6 + 70) / hz)
    with pytest.raises(RuntimeError, match="/proc/stat"):
        bench.cpu_busy_seconds("intr 1 2 3\n")
    # The real one: it reads and it only grows.
    before = bench.cpu_busy_seconds()
    assert 0 < before <= bench.cpu_busy_seconds()


def test_summary_of_a_virtio_run(bench):
    s = bench.summarize(raw_run())
    assert s["tcp_gbit"] == pytest.approx(3.0)
    assert s["tcp_fwd_gbit"] == pytest.approx(2.0) and s["tcp_rev_gbit"] == pytest.approx(4.0)
    assert s["tcp4_gbit"] == pytest.approx(6.0)
    assert s["udp64_kpps"] == pytest.approx(50.0)  # 400 000 delivered in 8 s
    assert s["lat_p50_us"] == 17.433 and s["lat_p99_us"] == 94.058
    assert s["rtt_median_ms"] == pytest.approx(1.495)
    assert s["rtt_p99_ms"] == pytest.approx(1.99)
    # 24 busy CPU seconds over (2 + 4 + 6) Gbit/s * 8 s = 12 GB.
    assert s["cpu_s_per_gb"] == pytest.approx(24 / 12)
    assert "copies_per_pkt" not in s and "kicks_per_pkt" not in s
    assert set(s) <= {k for k, _, _ in bench.METRICS}


def test_summary_of_a_partlink_run_has_the_per_packet_counters(bench):
    s = bench.summarize(raw_run(status=partlink_status()))
    assert s["copies_per_pkt"] == pytest.approx(1.0)
    assert s["kicks_per_pkt"] == pytest.approx(400 / 1600)
    assert s["irqs_per_pkt"] == pytest.approx(160 / 1600)


def test_per_packet_counters_under_the_names_to_come(bench):
    status = partlink_status()
    for p in status["partitions"]:
        c = p["counters"]
        c["kicks"], c["interrupts"] = c.pop("tx_kicks"), c.pop("rx_interrupts")
    s = bench.fabric_per_packet(status)
    assert s["kicks_per_pkt"] == pytest.approx(0.25) and s["irqs_per_pkt"] == pytest.approx(0.1)
    for p in status["partitions"]:
        del p["counters"]["kicks"], p["counters"]["interrupts"]
    assert set(bench.fabric_per_packet(status)) == {"copies_per_pkt"}


def test_per_packet_counters_refuse_missing_or_empty_counters(bench):
    status = partlink_status()
    del status["partitions"][1]["counters"]
    with pytest.raises(RuntimeError, match="no counters for vm2"):
        bench.fabric_per_packet(status)
    status = {"run_dir": "/tmp/run", "net": "partlink",
              "partitions": [partition("vm1"), partition("vm2")]}
    with pytest.raises(RuntimeError, match="no packets sent or received; see /tmp/run"):
        bench.fabric_per_packet(status)


def test_spread_is_median_min_max_over_the_runs_that_have_the_metric(bench):
    runs = [{"tcp_gbit": 3.0, "lat_p50_us": 20.0}, {"tcp_gbit": 1.0},
            {"tcp_gbit": 2.0, "lat_p50_us": 30.0}]
    s = bench.spread(runs)
    assert s["tcp_gbit"] == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert s["lat_p50_us"] == {"median": 25.0, "min": 20.0, "max": 30.0}
    assert list(s) == ["tcp_gbit", "lat_p50_us"]  # in the table's order


def test_ratio_line_has_the_keys_scripts_read(bench):
    base = stats_of(tcp_gbit=1.0, tcp4_gbit=1.0, udp64_kpps=10.0, lat_p50_us=40.0,
                    cpu_s_per_gb=2.0)
    partlink = stats_of(tcp_gbit=2.1, tcp4_gbit=2.3, udp64_kpps=16.0, lat_p50_us=20.0,
                        cpu_s_per_gb=0.9, copies_per_pkt=1.0)
    assert bench.ratio_line("partlink", "virtio-tap", partlink, base) == (
        "partlink/virtio-tap: tcp 2.10x tcp4 2.30x udp64 1.60x lat 0.50x cpu/GB 0.45x "
        "copies/pkt 1.00")
    socket = stats_of(tcp_gbit=0.24, tcp4_gbit=0.3, udp64_kpps=0.0, lat_p50_us=80.0,
                      cpu_s_per_gb=6.0)
    base["udp64_kpps"]["median"] = 0.0
    assert bench.ratio_line("virtio-socket", "virtio-tap", socket, base) == (
        "virtio-socket/virtio-tap: tcp 0.24x tcp4 0.30x udp64 n/a lat 2.00x cpu/GB 3.00x")


def test_ratio_lines_put_partlink_last(bench):
    runs = {"partlink": [bench.summarize(raw_run((4, 4, 4), status=partlink_status()))],
            "virtio-tap": [bench.summarize(raw_run((2, 2, 2)))],
            "virtio-socket": [bench.summarize(raw_run((1, 1, 1)))]}
    stats = {m: bench.spread(r) for m, r in runs.items()}
    lines = bench.ratio_lines(stats, "virtio-tap")
    assert [line.split(":")[0] for line in lines] == ["virtio-socket/virtio-tap",
                                                      "partlink/virtio-tap"]
    assert lines[-1].startswith("partlink/virtio-tap: tcp 2.00x tcp4 2.00x udp64 1.00x "
                                "lat 1.00x cpu/GB 0.50x copies/pkt 1.00")


def test_table_shows_median_and_range_per_mode(bench):
    runs = {"partlink": [bench.summarize(raw_run((a, a, a), status=partlink_status()))
                         for a in (4, 2, 3)],
            "virtio-tap": [bench.summarize(raw_run((a, a, a))) for a in (1, 2, 3)]}
    table = bench.format_table({m: bench.spread(r) for m, r in runs.items()})
    lines = table.splitlines()
    assert lines[0].split() == ["partlink", "virtio-tap"]
    tcp = next(line for line in lines if line.startswith("TCP 1 stream"))
    assert tcp.split()[-4:] == ["3.00", "[2.00-4.00]", "2.00", "[1.00-3.00]"]
    copies = next(line for line in lines if line.startswith("copies/pkt"))
    assert copies.split()[-3:] == ["1.00", "[1.00-1.00]", "-"]
    assert any(line.startswith("sockperf RTT p99, us") for line in lines)
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_summary_json_holds_every_run_and_the_spread(bench, tmp_path):
    args = type("Args", (), {"runs": 2, "seconds": 8, "accel": "tcg", "mem": 512, "cpus": 1})
    runs = {"partlink": [bench.summarize(raw_run(status=partlink_status()))] * 2,
            "virtio-tap": [bench.summarize(raw_run())]}
    doc = json.loads(json.dumps(bench.summary_doc(args, ["partlink", "virtio-tap"],
                                                  "virtio-tap", runs)))
    assert len(doc["per_mode"]["partlink"]["runs"]) == 2
    assert doc["per_mode"]["virtio-tap"]["stats"]["tcp_gbit"]["median"] == pytest.approx(3.0)
    assert doc["ratio_lines"][-1].startswith("partlink/virtio-tap: tcp 1.00x")
    # Part way through (a run failed): no ratios yet, the runs so far kept.
    runs["virtio-tap"] = []
    doc = bench.summary_doc(args, ["partlink", "virtio-tap"], "virtio-tap", runs)
    assert "ratio_lines" not in doc and doc["per_mode"]["virtio-tap"]["stats"] is None


@pytest.mark.parametrize("argv, message", [
    (["--modes", "partlink,bogus"], "unknown mode 'bogus'"),
    (["--modes", "partlink"], "at least two different modes"),
    (["--modes", "partlink,partlink"], "at least two different modes"),
    (["--runs", "0"], "--runs and --seconds must be at least 1"),
])
def test_bad_arguments_are_refused_before_booting(argv, message):
    proc = subprocess.run([PYTHON, str(SCRIPTS / "bench.py"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


def ipc_raw(segment=True):
    ipc = {"tcp_pingpong": (DATA / "sockperf-ping-pong.txt").read_text(),
           "tcp_1m": {"end": {"sum_received": {"bytes": 300 * 2**20 * 3, "seconds": 3.0}}}}
    if segment:
        ipc["seg_ping"] = {"test": "plmq-ping", "p50_us": 5.0, "p99_us": 150.0}
        ipc["seg_bw"] = {"test": "plmq-bench-recv", "count": 256, "mib_per_s": 800.0,
                         "errors": 0}
    return ipc


def test_ipc_part_summarizes_tcp_and_the_segment(bench):
    raw = raw_run(status=partlink_status())
    raw["ipc"] = ipc_raw()
    s = bench.summarize(raw)
    assert s["ipc_tcp_p50_us"] == 17.433 and s["ipc_tcp_p99_us"] == 94.058
    assert s["ipc_tcp_mibs"] == pytest.approx(300.0)
    assert (s["ipc_seg_p50_us"], s["ipc_seg_p99_us"], s["ipc_seg_mibs"]) == (5.0, 150.0, 800.0)
    raw = raw_run()
    raw["ipc"] = ipc_raw(segment=False)
    assert "ipc_seg_p50_us" not in bench.summarize(raw)


@pytest.mark.parametrize("bad, message", [
    ({"errors": 3}, "3 messages out of sequence"),
    ({"count": 100}, "got 100 of 256 messages"),
])
def test_ipc_segment_transfers_that_lost_messages_are_errors(bench, bad, message):
    ipc = ipc_raw()
    ipc["seg_bw"].update(bad)
    with pytest.raises(RuntimeError, match=message):
        bench.summarize_ipc(ipc)


def test_ipc_ratio_lines_come_last_with_pl0_at_the_end(bench):
    partlink = stats_of(ipc_tcp_p50_us=500.0, ipc_tcp_p99_us=1500.0, ipc_tcp_mibs=300.0,
                        ipc_seg_p50_us=40.0, ipc_seg_p99_us=150.0, ipc_seg_mibs=1200.0)
    tap = stats_of(ipc_tcp_p50_us=400.0, ipc_tcp_p99_us=1000.0, ipc_tcp_mibs=400.0)
    assert bench.ipc_ratio_lines({"partlink": partlink, "virtio-tap": tap}, "virtio-tap") == [
        "segment/tcp-virtio-tap: lat 0.10x p99 0.15x bw 3.00x",
        "segment/tcp-pl0: lat 0.08x p99 0.10x bw 4.00x"]
    assert bench.ipc_ratio_lines({"partlink": stats_of(tcp_gbit=1.0), "virtio-tap": tap},
                                 "virtio-tap") == []
