"""A real partlinkd and partlink-pci devices in qtest QEMUs joined to it."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from abi import ABI
from adapter import Adapter
from qtest import BUILD, Qtest

PARTLINKD = Path(os.environ.get("PARTLINK_PARTLINKD", BUILD / "bin" / "partlinkd"))


def mac_of(port):
    return f"02:70:6c:00:00:{port:02x}"


class Fabric:
    """partlinkd in a temporary run directory, and the QEMUs attached to it."""

    def __init__(self, config=None):
        if not PARTLINKD.exists():
            raise FileNotFoundError(f"{PARTLINKD} is missing: run 'make shim'")
        self._tmp = tempfile.TemporaryDirectory(prefix="partlink-fabric-")
        self.dir = Path(self._tmp.name)
        self.socket = self.dir / "partlinkd.sock"
        self.segment = self.dir / "fabric"
        self.config = None
        if config is not None:
            self.config = self.dir / "fabric.json"
            self.config.write_text(json.dumps(config))
        self.daemon = None
        self.qemus = []
        self.start_daemon()

    def start_daemon(self):
        argv = [str(PARTLINKD), "--socket", str(self.socket),
                "--segment", str(self.segment)]
        if self.config:
            argv += ["--config", str(self.config)]
        log = open(self.dir / "partlinkd.log", "ab")
        self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"partlinkd did not start: {self.log()}")
            time.sleep(0.02)

    def wait_registered_again(self, *names, timeout=10):
        """Wait until the (restarted) daemon logs each name registered again."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log().split("listening on")[-1]
            if all(f"{n} (port" in text and "registered again" in text
                   for n in names):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{names} did not register again: {self.log()}")
            time.sleep(0.02)

    def kill_daemon(self, sig=signal.SIGKILL):
        self.daemon.send_signal(sig)
        self.daemon.wait(timeout=10)

    def log(self):
        path = self.dir / "partlinkd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def adapter(self, port, name=None):
        """Boot a qtest QEMU whose partlink-pci joins the fabric."""
        name = name or f"vm{port}"
        q = Qtest(f"partlink-pci,mac={mac_of(port)},port={port},name={name},"
                  "chardev=fabric",
                  extra_args=["-chardev", f"socket,id=fabric,path={self.socket},"
                              "reconnect-ms=100"])
        self.qemus.append(q)
        return Adapter(q, mac_of(port))

    def close(self):
        for q in self.qemus:
            q.close()
        if self.daemon and self.daemon.poll() is None:
            self.kill_daemon(signal.SIGTERM)
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_link(adapter, peers, timeout=10):
    """Wait until the adapter is on the fabric and sees that many peers."""
    want = ABI["PARTLINK_LINK_UP"] | peers << ABI["PARTLINK_LINK_PEERS_SHIFT"]
    deadline = time.monotonic() + timeout
    while True:
        link = adapter.readl("LINK")
        if link == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"LINK is {link:#x}, expected {want:#x}")
        time.sleep(0.02)
