"""Fixtures that boot real guests through the partlink launcher.

Every run directory a test creates is torn down with `partlink down`, also
when the test fails, and a session-wide guard kills any QEMU that still
names one of those directories, so no guest, tap or bridge outlives pytest.
"""

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procs import kill_qemus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
PARTLINK = BUILD / "bin" / "partlink"
IMAGES = BUILD / "images"
BOOT_TIMEOUT = 600  # 3 guests under TCG on 2 busy cores, with margin


def require_build():
    missing = [str(p) for p in (PARTLINK, BUILD / "qemu" / "qemu-system-x86_64",
                                IMAGES / "vmlinuz", IMAGES / "initramfs.cpio.gz")
               if not p.exists()]
    if missing:
        # Not a skip: a missing build is a failure of the run, said loudly.
        pytest.fail("build incomplete, run 'make all' first; missing: " + ", ".join(missing),
                    pytrace=False)


class Cluster:
    """The partitions of one run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def partlink(self, *args, timeout=120, check=True, env=None, input=None):
        argv = [str(PARTLINK), "--run-dir", str(self.run_dir), *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env, input=input if input is not None else "")
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def up(self, *args, timeout=BOOT_TIMEOUT):
        return self.partlink("up", *args, timeout=timeout)

    def down(self):
        return self.partlink("down", timeout=120, check=False)

    def ssh(self, vm, command, timeout=120, check=True):
        """Run a shell command line in a guest over the management path."""
        return self.partlink("ssh", vm, "--", command, timeout=timeout, check=check)

    def status(self):
        return json.loads(self.partlink("status", "--json").stdout)

    def partitions(self):
        return {p["name"]: p for p in self.status()["partitions"]}


def kill_leftovers(run_dir: Path):
    """Last line of defence should `partlink down` itself be broken."""
    return kill_qemus(run_dir)


@pytest.fixture
def new_cluster(tmp_path_factory):
    """A factory of empty run directories, each torn down at the end."""
    require_build()
    clusters = []

    def make(name="run"):
        c = Cluster(tmp_path_factory.mktemp(name))
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.down()
        leftovers = kill_leftovers(c.run_dir)
        assert not leftovers, f"partlink down left QEMU running: {leftovers}"


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory):
    """Three guests on the virtio-net tap+bridge data network."""
    require_build()
    c = Cluster(tmp_path_factory.mktemp("three"))
    try:
        started = time.monotonic()
        c.boot_output = c.up("--vms", "3")
        c.boot_seconds = time.monotonic() - started
        yield c
    finally:
        c.down()
        kill_leftovers(c.run_dir)


def guest_ping(cluster, src, dst_ip, count=3):
    """Ping dst_ip from guest src over the data network; fail with the output."""
    proc = cluster.ssh(src, f"ping -c {count} -W 2 {dst_ip}", check=False)
    assert proc.returncode == 0, f"{src} -> {dst_ip}: ping failed\n{proc.stdout}{proc.stderr}"
    return proc.stdout
