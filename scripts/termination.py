"""Shared by the scripts that boot guests (demo-wlm.py, bench.py)."""

import signal


def stop_cleanly_on_termination():
    """SIGTERM or SIGHUP (a timeout, a closed terminal) unwinds like Ctrl-C,
    so that the guests a script started are shut down, not left running."""
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
