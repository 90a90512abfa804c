import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# procs: finding the processes a test started, shared with the scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))

from procs import qemu_pids  # noqa: E402
from fabric import Fabric  # noqa: E402


@pytest.fixture(autouse=True)
def no_qemu_left_behind():
    """Every test must stop the QEMU it started, also when it fails."""
    before = set(qemu_pids("partlink-qtest-"))
    yield
    leaked = set(qemu_pids("partlink-qtest-")) - before
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"QEMU processes left running: {sorted(leaked)}"


@pytest.fixture
def fabric():
    """A real partlinkd and the qtest QEMUs a test attaches to it."""
    with Fabric() as f:
        yield f
