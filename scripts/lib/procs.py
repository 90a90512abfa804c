"""Finding the QEMU (and partlinkd) processes a test started, by a marker
in their command line (a run directory, a qtest socket directory)."""

import os
import signal
from pathlib import Path


def _pids(marker, is_program):
    marker = str(marker).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if is_program(cmdline) and marker in cmdline:
            pids.append(int(proc.name))
    return pids


def qemu_pids(marker):
    """Pids of live qemu-system processes whose command line holds marker."""
    return _pids(marker, lambda cmdline: b"qemu-system" in cmdline)


def partlinkd_pids(marker):
    """Pids of live partlinkd processes whose command line holds marker."""
    return _pids(marker, lambda cmdline: cmdline.split(b"\0")[0].endswith(b"partlinkd"))


def _kill(pids):
    """SIGKILL pids; return them, the ones that were still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def kill_partlinkds(marker):
    """SIGKILL every such partlinkd; return the pids that were still there."""
    return _kill(partlinkd_pids(marker))


def kill_qemus(marker):
    """SIGKILL every such process; return the pids that were still there."""
    return _kill(qemu_pids(marker))
