import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _qtest_qemus():
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and b"partlink-qtest-" in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.fixture(autouse=True)
def no_qemu_left_behind():
    """Every test must stop the QEMU it started, also when it fails."""
    before = set(_qtest_qemus())
    yield
    leaked = set(_qtest_qemus()) - before
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"QEMU processes left running: {sorted(leaked)}"
