"""The kernel-developer loop: `up --kernel/--share/--gdb/--qemu-arg`,
`driver reload`, `run`, `console`, `logs` and `gdb`, with real guests.

One 3-partition run, booted once for the module, carries most of it: the
image's own Debian kernel passed explicitly as a bzImage
(build/images/vmlinuz), a read-only and a read-write share, gdbstubs and a
harmless extra QEMU option.  `partlink run` boots private runs of its own
(under a TMPDIR of the test's, so that whatever one leaves behind is found
and killed).
"""

import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import (BOOT_TIMEOUT, IMAGES, PARTLINK, REPO, Cluster, guest_ping,
                      kill_leftovers, require_build)
from procs import partlinkd_pids, qemu_pids

VMS = ("vm1", "vm2", "vm3")
KERNEL = IMAGES / "vmlinuz"  # Debian's kernel, as a bzImage
QEMU_EXTRA = ["-msg", "timestamp=on"]  # harmless, and visible in QEMU's argv
RO_TEXT = "shared read-only from the host\n"


def release():
    return (IMAGES / "kernel-release").read_text().strip()


@pytest.fixture(scope="module")
def dev3(tmp_path_factory):
    """vm1..vm3 booted with every developer option at once."""
    require_build()
    if not KERNEL.is_file():
        pytest.fail(f"{KERNEL} is missing: run 'make images'", pytrace=False)
    run = tmp_path_factory.mktemp("devloop")
    shares = tmp_path_factory.mktemp("shares")
    ro, rw = shares / "ro", shares / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "hello.txt").write_text(RO_TEXT)
    c = Cluster(run)
    try:
        c.boot_output = c.up("--vms", "3", "--kernel", KERNEL, "--gdb",
                             "--share", f"{ro}:ro", "--share", f"{rw}:rw:rw",
                             "--qemu-arg", " ".join(QEMU_EXTRA))
        c.ro, c.rw = ro, rw
        yield c
    finally:
        c.down()
        kill_leftovers(c.run_dir)


def run_state(cluster):
    return json.loads((cluster.run_dir / "state.json").read_text())


def guest_srcversions(cluster):
    return {vm: cluster.ssh(vm, "cat /sys/module/partlink/srcversion").stdout.strip()
            for vm in VMS}


def modinfo(ko, field):
    return subprocess.run(["modinfo", "-F", field, str(ko)], capture_output=True,
                          text=True, check=True).stdout.strip()


# ------------------------------------------------------------ (a) --kernel

def test_up_kernel_bzimage_boots_that_release(dev3):
    rel = release()
    for vm in VMS:
        assert dev3.ssh(vm, "uname -r").stdout.strip() == rel, vm
    boot = run_state(dev3)["boot"]
    assert boot["release"] == rel
    assert Path(boot["kernel_given"]) == KERNEL.resolve()
    # up prepared an image of its own for it, and said which kernel runs.
    assert Path(boot["kernel"]).is_file()
    assert f"kernel {rel} from {KERNEL.resolve()}" in dev3.boot_output.stderr + \
        dev3.boot_output.stdout


# ------------------------------------------------------------ (b) driver reload

def build_changed_module(tmp_path, kdir):
    """partlink.ko from a changed copy of guest-driver/kernel, built by a copy
    of scripts/build-driver.sh (which builds the sources beside it, keeping
    the repository's layout); returns (path, the marker it carries)."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "build-driver.sh", tree / "scripts")
    shutil.copytree(REPO / "guest-driver" / "kernel", tree / "guest-driver" / "kernel")
    shutil.copytree(REPO / "include" / "partlink", tree / "include" / "partlink")
    marker = uuid.uuid4().hex[:12]
    with open(tree / "guest-driver" / "kernel" / "partlink_main.c", "a") as f:
        f.write(f'MODULE_INFO(partlink_test, "{marker}");\n')
    proc = subprocess.run([str(tree / "scripts" / "build-driver.sh"), "--kdir", kdir,
                           "--build-dir", str(tmp_path / "build")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"build-driver.sh failed\n{proc.stdout}{proc.stderr}"
    ko = tmp_path / "build" / "driver" / release() / "partlink.ko"
    assert ko.is_file(), proc.stdout
    assert modinfo(ko, "partlink_test") == marker
    return ko, marker


RELOAD_LINE = re.compile(r"^  (vm\d+): partlink\.ko (\w+) -> (\w+) in ([\d.]+) s "
                         r"\(pl0 (\S+) mtu (\d+) carrier up", re.M)


def test_driver_reload_changed_module_in_three_partitions(dev3, tmp_path):
    kdir = run_state(dev3)["boot"]["kdir"]
    assert (dev3.run_dir / "kdir").read_text().strip() == kdir, \
        "the run's kdir file (what `make driver` builds against) disagrees with state.json"
    ko, _ = build_changed_module(tmp_path, kdir)
    new = modinfo(ko, "srcversion")
    before = guest_srcversions(dev3)
    assert new not in before.values(), "the changed module has the old srcversion"
    pids = {vm: p["qemu_pid"] for vm, p in dev3.partitions().items()}

    proc = dev3.partlink("driver", "reload", "--module", ko, timeout=300)
    lines = {m[0]: m for m in RELOAD_LINE.findall(proc.stdout)}
    assert set(lines) == set(VMS), f"not one line per partition:\n{proc.stdout}{proc.stderr}"
    for vm, (_, old, to, secs, addr, mtu) in lines.items():
        assert (old, to) == (before[vm], new), lines[vm]
        assert addr == f"10.77.0.{vm[2:]}/24", lines[vm]
        assert float(secs) < 120

    assert guest_srcversions(dev3) == {vm: new for vm in VMS}
    # Reloaded, not rebooted.
    assert {vm: p["qemu_pid"] for vm, p in dev3.partitions().items()} == pids
    for src, dst in (("vm1", "vm2"), ("vm2", "vm3"), ("vm3", "vm1")):
        guest_ping(dev3, src, f"10.77.0.{dst[2:]}")
    out = dev3.ssh("vm2", "iperf3 -c 10.77.0.1 -t 2 -J", timeout=60).stdout
    received = json.loads(out)["end"]["sum_received"]["bytes"]
    assert received > 1_000_000, f"iperf3 over pl0 moved only {received} bytes"


def test_driver_reload_refuses_a_module_it_cannot_load(dev3, tmp_path):
    rel = release()
    before = guest_srcversions(dev3)
    # The same module, its vermagic claiming another release (same length).
    ko = tmp_path / "other.ko"
    data = (IMAGES / "partlink.ko").read_bytes()
    other = rel[:-1] + ("x" if rel[-1] != "x" else "y")
    old = f"vermagic={rel} ".encode()
    assert old in data, "no vermagic in the image's partlink.ko"
    ko.write_bytes(data.replace(old, f"vermagic={other} ".encode()))
    proc = dev3.partlink("driver", "reload", "--module", ko, check=False)
    assert proc.returncode == 1, proc
    assert f"built for {other}" in proc.stderr and rel in proc.stderr, proc.stderr

    proc = dev3.partlink("driver", "reload", "vm2", "--module", tmp_path / "missing.ko",
                         check=False)
    assert proc.returncode == 1 and "no module at" in proc.stderr, proc

    # No module built for the release: the same launcher, relocated so that
    # its BUILD (the directory above its bin/) has no driver/ yet.
    fake = tmp_path / "build"
    (fake / "bin").mkdir(parents=True)
    shutil.copy2(PARTLINK, fake / "bin" / "partlink")
    proc = subprocess.run([str(fake / "bin" / "partlink"), "--run-dir", str(dev3.run_dir),
                           "driver", "reload", "vm3"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PARTLINK_IMAGES": str(IMAGES)})
    assert proc.returncode == 1, proc
    assert f"no module at {fake}/driver/{rel}/partlink.ko" in proc.stderr, proc.stderr
    assert "make driver" in proc.stderr, proc.stderr

    assert guest_srcversions(dev3) == before, "a refused reload changed a partition"


# ------------------------------------------------------------ (c) run

RUN_DIR_RE = re.compile(r" in (/\S+/partlink-run\.\S+)")


def one_shot(tmp_path, *words, timeout=BOOT_TIMEOUT):
    """`partlink run WORDS`, its private run directory under tmp_path (TMPDIR);
    afterwards no QEMU or partlinkd of it may be left (killed if any are)."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    argv = [str(PARTLINK), "run", *map(str, words)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TMPDIR": str(tmpdir)}, stdin=subprocess.DEVNULL)
    finally:
        leftovers = kill_leftovers(tmpdir)
    assert not leftovers, f"{shlex.join(argv)} left QEMU or partlinkd running: {leftovers}"
    m = RUN_DIR_RE.search(proc.stderr)
    assert m and m.group(1).startswith(str(tmpdir)), \
        f"no private run directory under TMPDIR in the progress:\n{proc.stderr}"
    assert not Path(m.group(1)).exists(), f"run left its private directory {m.group(1)}"
    return proc


def test_run_passes_the_exit_status_and_cleans_up(tmp_path):
    require_build()
    ok = one_shot(tmp_path, "--", "true")
    assert ok.returncode == 0, ok.stderr
    failed = one_shot(tmp_path, "--", "false")
    assert failed.returncode == 1, failed.stderr
    out = one_shot(tmp_path, "--", "uname", "-r")
    assert out.returncode == 0, out.stderr
    assert out.stdout == release() + "\n", "stdout must be the command's output only"
    assert "partlink:" in out.stderr  # the progress went to stderr
    assert qemu_pids(tmp_path) == [] and partlinkd_pids(tmp_path) == []


# ------------------------------------------------------------ (d) --share

def test_shares_read_only_and_read_write(dev3):
    for vm in VMS:
        assert dev3.ssh(vm, "cat /mnt/ro/hello.txt").stdout == RO_TEXT, vm
    proc = dev3.ssh("vm2", "touch /mnt/ro/new-file", check=False)
    assert proc.returncode != 0, "a write to a read-only share succeeded"
    assert "Read-only file system" in proc.stdout + proc.stderr, proc
    assert not (dev3.ro / "new-file").exists()

    word = uuid.uuid4().hex
    dev3.ssh("vm3", f"echo {word} > /mnt/rw/from-vm3")
    assert (dev3.rw / "from-vm3").read_text() == word + "\n"
    # and a host-side change is seen by the guests at once
    (dev3.rw / "from-host").write_text(word)
    assert dev3.ssh("vm1", "cat /mnt/rw/from-host").stdout == word


# ------------------------------------------------------------ (e) --gdb

def gdb_ports(cluster):
    ports = {p["name"]: p.get("gdb_port") for p in run_state(cluster)["partitions"]}
    assert all(isinstance(v, int) and 0 < v < 65536 for v in ports.values()), ports
    assert len(set(ports.values())) == len(ports), ports
    return ports


RIP = re.compile(r"^rip\s+0x[0-9a-f]+", re.M)


def test_gdbstub_answers_plain_gdb(dev3):
    for vm, port in gdb_ports(dev3).items():
        proc = subprocess.run(["gdb", "-q", "-batch", "-ex", f"target remote 127.0.0.1:{port}",
                               "-ex", "info registers"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        assert RIP.search(proc.stdout), f"{vm}: no rip\n{proc.stdout}{proc.stderr}"
    # gdb detached: the guests run on.
    for vm in VMS:
        assert dev3.ssh(vm, "echo alive").stdout.strip() == "alive"


def test_partlink_gdb_attaches_with_module_symbols(dev3):
    proc = dev3.partlink("gdb", "vm1", "--", "-batch", "-ex", "info registers", timeout=60)
    assert RIP.search(proc.stdout), proc.stdout + proc.stderr
    text = dev3.ssh("vm1", "cat /sys/module/partlink/sections/.text").stdout.strip()
    assert "add symbol table from file" in proc.stdout, proc.stdout
    assert f".text_addr = {text}" in proc.stdout, proc.stdout
    assert dev3.ssh("vm1", "echo alive").stdout.strip() == "alive"


def test_status_json_shows_gdb_ports(dev3):
    """`up --help`: "--gdb ... (`status` shows the port; ...)"."""
    ports = gdb_ports(dev3)
    shown = {p["name"]: p.get("gdb_port") for p in dev3.status()["partitions"]}
    assert shown == ports, f"status --json has gdb_port {shown}, state.json {ports}"
    text = dev3.partlink("status").stdout
    assert all(f"{vm} 127.0.0.1:{port}" in text for vm, port in ports.items()), text


# ------------------------------------------------------------ (f) --qemu-arg

def dry_run_lines(tmp_path, *args):
    proc = subprocess.run([str(PARTLINK), "--run-dir", str(tmp_path / "dry"), "up",
                           "--vms", "3", "--dry-run", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^  (vm\d+): (.*)$", line)
        if m:
            lines[m.group(1)] = shlex.split(m.group(2))
    assert set(lines) == set(VMS), proc.stdout
    return lines


def has_words(argv, words):
    return any(argv[i:i + len(words)] == words for i in range(len(argv)))


def test_qemu_arg_dry_run_only_in_its_partition(tmp_path):
    require_build()
    lines = dry_run_lines(tmp_path, "--qemu-arg", "vm2:-d guest_errors")
    assert has_words(lines["vm2"], ["-d", "guest_errors"]), lines["vm2"]
    assert not has_words(lines["vm1"], ["-d", "guest_errors"])
    assert not has_words(lines["vm3"], ["-d", "guest_errors"])
    for argv in lines.values():
        assert argv[0].endswith("qemu-system-x86_64")
    # --qemu-arg=ARGS is the same as --qemu-arg ARGS; without vmN: everyone gets it.
    lines = dry_run_lines(tmp_path, "--qemu-arg=-d guest_errors")
    assert all(has_words(argv, ["-d", "guest_errors"]) for argv in lines.values()), lines
    # A dry run starts nothing and leaves no state.
    assert qemu_pids(tmp_path) == [] and partlinkd_pids(tmp_path) == []
    assert not (tmp_path / "dry" / "state.json").exists()


def test_qemu_arg_reaches_the_running_qemu(dev3):
    for vm, p in dev3.partitions().items():
        argv = Path(f"/proc/{p['qemu_pid']}/cmdline").read_bytes().decode().split("\0")
        assert has_words(argv, QEMU_EXTRA), f"{vm}: {QEMU_EXTRA} not in {argv}"
        assert any(a.startswith("tcp:127.0.0.1:") for a in argv), f"{vm}: no -gdb"


# ------------------------------------------------------------ (g) console

def test_console_attaches_and_detaches_on_ctrl_bracket(dev3):
    argv = [str(PARTLINK), "--run-dir", str(dev3.run_dir), "console", "vm2"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the launcher, its terminal the pty
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""

    def read_until(pattern, seconds):
        nonlocal out
        deadline = time.monotonic() + seconds
        while pattern not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the pty
                    break
                if not chunk:
                    break
                out += chunk
        return pattern in out

    status = None
    try:
        assert read_until(b"attached to vm2's console", 20), out
        os.write(fd, b"\r")
        assert read_until(b"vm2:", 20), f"no prompt: {out!r}"
        os.write(fd, b"echo con-$((40+2))\r")
        assert read_until(b"con-42", 30), f"the shell did not answer: {out!r}"
        os.write(fd, b"\x1d")
        assert read_until(b"detached", 20), out
        deadline = time.monotonic() + 20
        while status is None and time.monotonic() < deadline:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
            else:
                time.sleep(0.1)
        assert status == 0, f"console exited {status}: {out!r}"
    finally:
        if status is None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os.close(fd)
    # The guest is unharmed by the detach.
    assert dev3.ssh("vm2", "echo alive").stdout.strip() == "alive"


# ------------------------------------------------------------ (h) logs

def test_logs_shows_console_then_qemu_log(dev3):
    out = dev3.partlink("logs", "vm1").stdout
    console = f"==> {dev3.run_dir / 'vm1.console'} <=="
    log = f"==> {dev3.run_dir / 'vm1.log'} <=="
    assert console in out and log in out, out[:400]
    assert out.index(console) < out.index(log)
    between = out[out.index(console):out.index(log)]
    assert "partlink-guest: ready name=vm1" in between, between[-2000:]


# ------------------------------------------------------------ gdb after reload --module
# Last in the file: it fails with the launcher as of 1241ce8 (it adds
# build/driver/<rel>/partlink.ko whatever module the guest runs), and
# `pytest -x` should run everything above first.

def test_partlink_gdb_loads_the_symbols_of_the_loaded_module(dev3):
    """After `driver reload --module X` (the reload test above), gdb must add
    the symbols of the module the guest runs, not of another build."""
    running = dev3.ssh("vm1", "cat /sys/module/partlink/srcversion").stdout.strip()
    proc = dev3.partlink("gdb", "vm1", "--", "-batch", timeout=60)
    m = re.search(r'add symbol table from file "([^"]+)"', proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert modinfo(m.group(1), "srcversion") == running, \
        f"gdb loaded {m.group(1)} (srcversion {modinfo(m.group(1), 'srcversion')}), " \
        f"vm1 runs srcversion {running}"
