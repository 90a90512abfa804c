"""Fixtures that boot real guests through the partlink launcher.

Every run directory a test creates is torn down with `partlink down`, also
when the test fails, and a session-wide guard kills any QEMU or partlinkd
that still names one of those directories, so no guest, daemon, tap or
bridge outlives pytest.

Clusters use the launcher's default data network (partlink: pl0 on the
partlink-pci adapter, joined by partlinkd) unless a test asks for another
with net="virtio-tap" (or passes --net to up()).
"""

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# procs: finding the processes a test started, shared with the scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))

from procs import kill_partlinkds, kill_qemus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
PARTLINK = BUILD / "bin" / "partlink"
IMAGES = BUILD / "images"
BOOT_TIMEOUT = 600  # 3 guests under TCG on 2 busy cores, with margin
DEFAULT_NET = "partlink"  # what `partlink up` picks without --net
# The guest's data interface (it carries 10.77.0.N) per network mode.
DATA_IF = {"partlink": "pl0", "virtio-tap": "data0", "virtio-socket": "data0"}


def require_build():
    missing = [str(p) for p in (PARTLINK, BUILD / "qemu" / "qemu-system-x86_64",
                                IMAGES / "vmlinuz", IMAGES / "initramfs.cpio.gz")
               if not p.exists()]
    if missing:
        # Not a skip: a missing build is a failure of the run, said loudly.
        pytest.fail("build incomplete, run 'make all' first; missing: " + ", ".join(missing),
                    pytrace=False)


class Cluster:
    """The partitions of one run directory.  net: the --net that up() passes
    (None: the launcher's default, DEFAULT_NET)."""

    def __init__(self, run_dir: Path, net=None):
        self.run_dir = run_dir
        self.net = net

    @property
    def net_mode(self):
        """The network mode the guests run (or will run) on."""
        return self.net or DEFAULT_NET

    @property
    def data_if(self):
        """The guests' data interface: pl0 with partlink, data0 with virtio-net."""
        return DATA_IF[self.net_mode]

    def partlink(self, *args, timeout=120, check=True, env=None, input=None):
        argv = [str(PARTLINK), "--run-dir", str(self.run_dir), *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env, input=input if input is not None else "")
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def up(self, *args, timeout=BOOT_TIMEOUT):
        args = [str(a) for a in args]
        if "--net" in args:  # an explicit --net wins, and is remembered
            self.net = args[args.index("--net") + 1]
        elif self.net:
            args += ["--net", self.net]
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
    """Last line of defence should `partlink down` itself be broken: kills
    the run's QEMUs and partlinkd, returns the pids that were still there."""
    return kill_qemus(run_dir) + kill_partlinkds(run_dir)


@pytest.fixture
def new_cluster(tmp_path_factory):
    """A factory of empty run directories, each torn down at the end:
    new_cluster(), new_cluster("name"), new_cluster(net="virtio-tap")."""
    require_build()
    clusters = []

    def make(name="run", net=None):
        c = Cluster(tmp_path_factory.mktemp(name), net=net)
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.down()
        leftovers = kill_leftovers(c.run_dir)
        assert not leftovers, f"partlink down left QEMU or partlinkd running: {leftovers}"


def booted_cluster(tmp_path_factory, name, vms, net=None):
    """A generator for module-scoped fixtures: `vms` guests on `net`,
    booted once, torn down at the end of the module."""
    require_build()
    c = Cluster(tmp_path_factory.mktemp(name), net=net)
    try:
        started = time.monotonic()
        c.boot_output = c.up("--vms", str(vms))
        c.boot_seconds = time.monotonic() - started
        yield c
    finally:
        c.down()
        kill_leftovers(c.run_dir)


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory):
    """Three guests on the default data network (partlink, pl0)."""
    yield from booted_cluster(tmp_path_factory, "three", 3)


@pytest.fixture(scope="module")
def cluster3_tap(tmp_path_factory):
    """Three guests on the virtio-net tap+bridge data network (data0)."""
    yield from booted_cluster(tmp_path_factory, "three-tap", 3, net="virtio-tap")


def guest_ping(cluster, src, dst_ip, count=3):
    """Ping dst_ip from guest src over the data network; fail with the output."""
    proc = cluster.ssh(src, f"ping -c {count} -W 2 {dst_ip}", check=False)
    assert proc.returncode == 0, f"{src} -> {dst_ip}: ping failed\n{proc.stdout}{proc.stderr}"
    return proc.stdout
