"""Shared segments with real guests (spec section 16): the operator's table
loaded at boot and replaced on running partitions, device files with the
table's owner and mode, pipes and message queues between partitions, what
a partition without access has (nothing, not even an fd in its QEMU), a
read-only partition, revocation, and a peer killed mid-message.

vm1 and vm2 share segments; vm3 is in none of them at boot.
"""

import json
import os
import time

import pytest

from conftest import require_build, Cluster, kill_leftovers

TABLE = {"segments": [
    {"name": "pipe0", "size": "1M",
     "partitions": {"vm1": {"mode": "0666"}, "vm2": {"mode": "0666"}}},
    {"name": "mq0", "size": "256K",
     "partitions": {"vm1": {"mode": "0666"}, "vm2": {"mode": "0666"}}},
    {"name": "private", "size": "64K",
     "partitions": {"vm1": {},
                    "vm2": {"uid": 1000, "gid": 1000, "mode": "0640"}}},
    {"name": "notice", "size": "64K", "pinned": True,
     "partitions": {"vm1": {"mode": "0644"},
                    "vm2": {"mode": "0644", "access": "ro"}}},
]}

EXIT_PEER_GONE = 6
EXIT_REVOKED = 7
EXIT_READ_ONLY = 5
EXIT_NO_SEGMENT = 3


@pytest.fixture(scope="module")
def seg3(tmp_path_factory):
    require_build()
    run = tmp_path_factory.mktemp("segments")
    table = run / "table.json"
    table.write_text(json.dumps(TABLE))
    c = Cluster(run)
    try:
        c.up("--vms", "3", "--segments", table)
        yield c
    finally:
        c.down()
        kill_leftovers(c.run_dir)


def state(cluster):
    return json.loads(cluster.partlink("segments", "--json").stdout)


def qemu_pid(cluster, vm):
    return cluster.status()["partitions"][int(vm[2:]) - 1]["qemu_pid"]


def memfds_held(pid):
    """The names of the segment memfds a process holds."""
    names = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:partlink-seg:"):
            names.add(target[len("/memfd:partlink-seg:"):].split(" ")[0])
    return names


def test_nodes_have_the_tables_owner_and_mode(seg3):
    out = seg3.ssh("vm2", "stat -c '%n %u %g %a' /dev/partlink/seg/*").stdout
    nodes = dict((line.split()[0].rsplit("/", 1)[1], line.split()[1:])
                 for line in out.splitlines())
    assert nodes == {"pipe0": ["0", "0", "666"], "mq0": ["0", "0", "666"],
                     "private": ["1000", "1000", "640"],
                     "notice": ["0", "0", "644"]}, out
    assert "read-only" in seg3.ssh("vm2", "plseg info notice").stdout


def test_a_partition_without_access_has_nothing(seg3):
    proc = seg3.ssh("vm3", "ls /dev/partlink/seg/ 2>&1; plseg info pipe0",
                    check=False)
    assert proc.returncode == EXIT_NO_SEGMENT, proc.stdout + proc.stderr
    assert "pipe0" not in proc.stdout.split("plseg")[0]
    assert memfds_held(qemu_pid(seg3, "vm3")) == set()
    assert memfds_held(qemu_pid(seg3, "vm1")) == {"pipe0", "mq0", "private",
                                                  "notice"}
    held = {s["name"]: s["held_by"] for s in state(seg3)["segments"]}
    assert held["pipe0"] == ["vm1", "vm2"], held


def test_listing_names_who_may_map_and_who_holds(seg3):
    out = seg3.partlink("segments").stdout
    assert "SEGMENT" in out and "HELD BY" in out, out
    line = next(li for li in out.splitlines() if li.startswith("notice"))
    assert "vm2 ro 0:0 0644" in line and "yes" in line, line  # pinned


def test_64mib_through_a_pipe_arrive_intact(seg3):
    seg3.ssh("vm1", "dd if=/dev/urandom of=/tmp/blob bs=1M count=64 2>/dev/null")
    sent = seg3.ssh("vm1", "sha256sum < /tmp/blob").stdout.split()[0]
    seg3.ssh("vm2", "(plpipe recv pipe0 -t 300 > /tmp/blob; echo $? > /tmp/rc)"
                    " > /dev/null 2>/tmp/err &")
    seg3.ssh("vm1", "plpipe send pipe0 -t 300 -v < /tmp/blob", timeout=600)
    deadline = time.monotonic() + 60
    while seg3.ssh("vm2", "cat /tmp/rc 2>/dev/null", check=False).stdout == "":
        assert time.monotonic() < deadline, seg3.ssh("vm2", "cat /tmp/err").stdout
        time.sleep(0.5)
    assert seg3.ssh("vm2", "cat /tmp/rc").stdout.strip() == "0"
    got = seg3.ssh("vm2", "sha256sum < /tmp/blob").stdout.split()[0]
    seg3.ssh("vm1", "rm /tmp/blob")
    seg3.ssh("vm2", "rm -f /tmp/blob /tmp/rc /tmp/err")
    assert got == sent


def test_messages_arrive_in_order(seg3):
    seg3.ssh("vm1", "seq 1 500 | plmq send mq0 -")
    seg3.ssh("vm1", "plmq send mq0 --end")
    out = seg3.ssh("vm2", "plmq recv mq0").stdout
    assert out.split() == [str(i) for i in range(1, 501)]


def test_mode_and_owner_are_enforced(seg3):
    denied = seg3.ssh("vm2", "plseg --as 1001:1001 info private", check=False)
    assert denied.returncode == 4, denied.stdout + denied.stderr
    assert "Permission denied" in denied.stderr
    allowed = seg3.ssh("vm2", "plseg --as 1000:1000 info private")
    assert "size 65536" in allowed.stdout


def test_a_read_only_partition_cannot_change_the_segment(seg3):
    seg3.ssh("vm1", "plseg write notice 0 'from vm1'")
    refused = seg3.ssh("vm2", "plseg write notice 0 'from vm2'", check=False)
    assert refused.returncode == EXIT_READ_ONLY, refused.stderr
    assert seg3.ssh("vm1", "plseg read notice 0 8").stdout == "from vm1"
    assert seg3.ssh("vm2", "plseg read notice 0 8").stdout == "from vm1"


def test_doorbells_reach_the_other_partition(seg3):
    port2 = seg3.ssh("vm2", "plseg info private").stdout.split("port ")[1].split()[0]
    seg3.ssh("vm2", "(plseg wait private 60 > /tmp/wait; echo $? >> /tmp/wait) "
                    "> /dev/null 2>&1 &")
    time.sleep(1)
    seg3.ssh("vm1", f"plseg ring private {port2}")
    deadline = time.monotonic() + 30
    while "rung" not in seg3.ssh("vm2", "cat /tmp/wait", check=False).stdout:
        assert time.monotonic() < deadline, "vm2 heard no doorbell"
        time.sleep(0.5)
    ring_vm3 = seg3.ssh("vm1", "plseg ring private 3", check=False)
    assert ring_vm3.returncode != 0  # vm3 does not share it
    # Both ends in one partition: ringing its own port wakes its own waiter.
    out = seg3.ssh("vm2", f"plseg wait private 30 & sleep 1; plseg ring private {port2}; wait")
    assert "rung" in out.stdout, out.stdout


def test_a_writer_killed_mid_stream_is_detected(seg3):
    seg3.ssh("vm2", "(plpipe recv pipe0 -t 120 > /dev/null 2>/tmp/err; "
                    "echo $? > /tmp/rc) > /dev/null 2>&1 &")
    seg3.ssh("vm1", "(dd if=/dev/zero bs=1M count=4096 2>/dev/null | "
                    "plpipe send pipe0 -t 120) > /dev/null 2>&1 & "
                    "sleep 3; kill -9 $(pidof plpipe)")
    deadline = time.monotonic() + 60
    while seg3.ssh("vm2", "cat /tmp/rc 2>/dev/null", check=False).stdout == "":
        assert time.monotonic() < deadline, "the reader did not notice"
        time.sleep(0.5)
    assert seg3.ssh("vm2", "cat /tmp/rc").stdout.strip() == str(EXIT_PEER_GONE), \
        seg3.ssh("vm2", "cat /tmp/err").stdout
    seg3.ssh("vm2", "rm -f /tmp/rc /tmp/err")
    # The pipe can be used again.
    seg3.ssh("vm2", "plpipe reset pipe0 --force", check=False)


def test_load_adds_and_revokes_on_running_partitions(seg3, tmp_path):
    new = json.loads(json.dumps(TABLE))
    new["segments"] = [s for s in new["segments"] if s["name"] != "private"]
    new["segments"].append({"name": "late", "size": "128K",
                            "partitions": {"vm1": {}, "vm3": {}}})
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))

    seg3.ssh("vm2", "(plseg hold private 120 > /dev/null 2>&1; echo $? > /tmp/hold) "
                    "> /dev/null 2>&1 &")
    time.sleep(1)
    dry = seg3.partlink("segments", "load", path, "--dry-run").stdout
    assert "- private" in dry and "+ late" in dry and "nothing applied" in dry, dry
    assert "late" not in {s["name"] for s in state(seg3)["segments"]}

    out = seg3.partlink("segments", "load", path).stdout
    assert "applied 2 changes" in out, out
    deadline = time.monotonic() + 60
    while seg3.ssh("vm3", "plseg info late", check=False).returncode != 0:
        assert time.monotonic() < deadline, "late did not appear in vm3"
        time.sleep(0.5)
    while seg3.ssh("vm2", "cat /tmp/hold 2>/dev/null", check=False).stdout == "":
        assert time.monotonic() < deadline, "the revoked mapping went on"
        time.sleep(0.5)
    assert seg3.ssh("vm2", "cat /tmp/hold").stdout.strip() == str(EXIT_REVOKED)
    gone = seg3.ssh("vm2", "plseg info private", check=False)
    assert gone.returncode == EXIT_NO_SEGMENT
    # The guest goes on, and vm3's QEMU now holds the new segment only.
    assert seg3.ssh("vm2", "echo alive").stdout == "alive\n"
    assert memfds_held(qemu_pid(seg3, "vm3")) == {"late"}
    # Nobody holds the revoked segment's memory any more: it is freed.
    daemon = seg3.status()["partlinkd"]["pid"]
    deadline = time.monotonic() + 10
    while any("private" in memfds_held(pid)
              for pid in (daemon, qemu_pid(seg3, "vm1"), qemu_pid(seg3, "vm2"))):
        assert time.monotonic() < deadline, "the revoked segment's memfd is still held"
        time.sleep(0.2)
    seg3.ssh("vm1", "plseg write late 0 hello")
    assert seg3.ssh("vm3", "plseg read late 0 5").stdout == "hello"


def test_a_bad_table_is_refused_and_nothing_changes(seg3, tmp_path):
    before = state(seg3)["segments"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segments": [
        {"name": "x", "size": 1000, "partitions": {"vm1": {}}}]}))
    proc = seg3.partlink("segments", "load", bad, check=False)
    assert proc.returncode != 0
    assert f'{bad}: segment "x": size 1000 is not a multiple of the page size (4096)' \
        in proc.stderr, proc.stderr
    assert state(seg3)["segments"] == before


def test_up_refuses_a_bad_table_before_booting(new_cluster, tmp_path):
    c = new_cluster("badtable")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segments": [
        {"name": "x", "size": "4K", "partitions": {"vm9": {}}}]}))
    proc = c.partlink("up", "--vms", "2", "--segments", bad, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f'--segments: {bad}: segment "x": partition "vm9"' in proc.stderr, proc.stderr
    assert not (c.run_dir / "state.json").exists()
