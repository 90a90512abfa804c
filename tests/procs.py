"""Finding the QEMU processes a test started, by a marker in their
command line (a run directory, a qtest socket directory)."""

import os
import signal
from pathlib import Path


def qemu_pids(marker):
    """Pids of live qemu-system processes whose command line holds marker."""
    marker = str(marker).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and marker in cmdline:
            pids.append(int(proc.name))
    return pids


def kill_qemus(marker):
    """SIGKILL every such process; return the pids that were still there."""
    pids = qemu_pids(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
