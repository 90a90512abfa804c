"""partlink-pci devices in qtest QEMUs joined to a fabric: either a real
partlinkd (Fabric) or a scripted stand-in for it (FakeDaemon), with which a
test decides what partlinkd says, when, and whether it says it well."""

import ctypes
import json
import mmap
import os
import select
import signal
import socket
import struct
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

    def __init__(self, config=None, segments=None):
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
        self.segments = None
        if segments is not None:  # a shared segments' table
            self.segments = self.dir / "segments.json"
            self.segments.write_text(json.dumps(segments))
        self.daemon = None
        self.qemus = []
        self.start_daemon()

    def start_daemon(self):
        argv = [str(PARTLINKD), "--socket", str(self.socket),
                "--segment", str(self.segment)]
        if self.config:
            argv += ["--config", str(self.config)]
        if self.segments:
            argv += ["--segments", str(self.segments),
                     "--segments-state", str(self.dir / "segments-state.json")]
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

    def adapter(self, port, name=None, props="", ram_opts="", extra_args=()):
        """Boot a qtest QEMU whose partlink-pci joins the fabric; props:
        more device properties, e.g. ",tx-linger-us=1000"; ram_opts: more
        options of its memory backend, e.g. ",seal=off"; extra_args: more
        QEMU arguments."""
        name = name or f"vm{port}"
        q = Qtest(f"partlink-pci,mac={mac_of(port)},port={port},name={name},"
                  f"chardev=fabric{props}", ram_opts=ram_opts,
                  extra_args=["-chardev", f"socket,id=fabric,path={self.socket},"
                              "reconnect-ms=100", *extra_args])
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


MSG = struct.Struct("=II")                  # struct partlink_msg
WELCOME = struct.Struct("=IIII")            # struct partlink_msg_welcome
MBOX_REQUEST_SIZE = ABI["PARTLINK_MBOX_REQUEST_SIZE"]
MBOX_ANSWER = struct.Struct("<IIq96s")      # struct partlink_mbox_answer
MSG_MBOX_REQUEST = struct.Struct(f"=II{MBOX_REQUEST_SIZE}s")
PORT_MSG_SIZE = 40 + 32 * ABI["PARTLINK_MAX_REGIONS"]  # struct partlink_msg_port
# struct partlink_fabric: a 64-byte header, then 512-byte port slots
FABRIC_HEADER = struct.Struct("=III")
FABRIC_SIZE = 64 + 512 * ABI["PARTLINK_FABRIC_PORTS"]
SLOT_IDS = struct.Struct("=IIIIi6s2x16s")  # state .. name, after rx_lock
SLOT_LOCK_SIZE = ABI["PARTLINK_LOCK_SIZE"]


def mbox_answer(result, value=0, reason=b"", reserved=0):
    """The 112 bytes of a struct partlink_mbox_answer."""
    return MBOX_ANSWER.pack(result, reserved, value, reason)


class FakeDaemon:
    """A stand-in for partlinkd that registers one device and then does
    what the test says: answer a mailbox request, stay silent, send stale
    or malformed answers.

    It writes the fabric segment just enough for the device to accept its
    WELCOME (magic, and the device's slot UP with its epoch and pid); no
    peers, so the data path is not for this one.
    """

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="partlink-fake-")
        self.dir = Path(self._tmp.name)
        self.socket = self.dir / "partlinkd.sock"
        self.segment = self.dir / "fabric"
        with open(self.segment, "wb") as f:
            f.write(FABRIC_HEADER.pack(ABI["PARTLINK_FABRIC_MAGIC"],
                                       ABI["PARTLINK_FABRIC_VERSION"],
                                       ABI["PARTLINK_FABRIC_PORTS"]))
            f.truncate(FABRIC_SIZE)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket))
        self._listener.listen(4)
        self._listener.settimeout(10)
        self.conn = None
        self.q = None
        self.pid = None
        self.doorbell = None
        self._buf = b""
        self._fds = []
        self.epoch = 7

    def adapter(self, port=3, name="vm3", welcome=True, props=""):
        """Boot a qtest QEMU whose partlink-pci connects here; take its
        HELLO and, unless told not to, register it."""
        self.port = port
        # No reconnect-ms: the chardev connects before the machine starts,
        # and a connection the device closes stays closed.
        self.q = Qtest(f"partlink-pci,mac={mac_of(port)},port={port},"
                       f"name={name},chardev=fabric{props}",
                       extra_args=["-chardev",
                                   f"socket,id=fabric,path={self.socket}"])
        try:
            self.conn, _ = self._listener.accept()
            cred = self.conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
            self.pid = struct.unpack("3i", cred)[0]
            mtype, payload = self.receive()
            assert mtype == ABI["PARTLINK_MSG_HELLO"], mtype
            assert len(payload) == PORT_MSG_SIZE, len(payload)
            # The device's doorbell: ringing it is what a peer does.
            self.doorbell = os.dup(self._fds[0])
            self._close_fds()
            if welcome:
                self.welcome()
            a = Adapter(self.q, mac_of(port))
            if welcome:
                wait_link(a, 0)
        except BaseException:
            self.close()
            raise
        return a

    def welcome(self, flags=0):
        """Fill the device's slot the way partlinkd does, and send WELCOME."""
        name = f"vm{self.port}".encode()
        with open(self.segment, "r+b") as f, \
                mmap.mmap(f.fileno(), FABRIC_SIZE) as seg:
            off = 64 + 512 * self.port + SLOT_LOCK_SIZE
            seg[off:off + SLOT_IDS.size] = SLOT_IDS.pack(
                ABI["PARTLINK_PORT_UP"], self.epoch, 1, flags, self.pid,
                bytes.fromhex(mac_of(self.port).replace(":", "")), name)
        fd = os.open(self.segment, os.O_RDWR)
        try:
            body = WELCOME.pack(self.port, self.epoch, 1, flags)
            socket.send_fds(self.conn, [MSG.pack(ABI["PARTLINK_MSG_WELCOME"],
                                                 len(body)) + body], [fd])
        finally:
            os.close(fd)

    def _close_fds(self):
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _fill(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.conn], [], [], left)[0]:
                raise TimeoutError(f"device sent {len(self._buf)} of {n} bytes")
            data, fds, _, _ = socket.recv_fds(self.conn, 65536, 16)
            self._fds += fds
            if not data:
                raise EOFError("the device closed the connection")
            self._buf += data

    def receive(self, timeout=10):
        """The next message from the device as (type, payload)."""
        self._fill(MSG.size, timeout)
        mtype, length = MSG.unpack_from(self._buf)
        self._fill(MSG.size + length, timeout)
        payload = self._buf[MSG.size:MSG.size + length]
        self._buf = self._buf[MSG.size + length:]
        return mtype, payload

    def nothing_sent(self, wait=0.2):
        """True if the device sends nothing within `wait` seconds."""
        try:
            self._fill(len(self._buf) + 1, wait)
        except TimeoutError:
            return True
        return False

    def closed_by_device(self, timeout=10):
        """True once the device has closed its end of the connection."""
        try:
            while True:
                self._fill(len(self._buf) + 1, timeout)
        except EOFError:
            return True
        except TimeoutError:
            return False

    def request(self, timeout=10):
        """The next mailbox request as (seq, the 128 request bytes)."""
        mtype, payload = self.receive(timeout)
        assert mtype == ABI["PARTLINK_MSG_MBOX_REQUEST"], mtype
        assert len(payload) == MSG_MBOX_REQUEST.size, len(payload)
        seq, pad, body = MSG_MBOX_REQUEST.unpack(payload)
        assert pad == 0
        return seq, body

    def send(self, mtype, payload):
        """Any message, well-formed or not."""
        self.conn.sendall(MSG.pack(mtype, len(payload)) + payload)

    def answer(self, seq, answer):
        """MBOX_ANSWER to request seq; answer is the 112 answer bytes."""
        self.send(ABI["PARTLINK_MSG_MBOX_ANSWER"],
                  struct.pack("=II", seq, 0) + answer)

    def close(self):
        if self.q is not None:
            self.q.close()
            self.q = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._close_fds()
        if self.doorbell is not None:
            os.close(self.doorbell)
            self.doorbell = None
        self._listener.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


PORT_SLOT = 512      # sizeof(struct partlink_fabric_port)
SLOT_RX_CLAIMED = 196  # offsetof(struct partlink_fabric_port, rx_claimed)


def hold_rx_lock(segment, port, seconds, claimed=0):
    """Fork a process that takes a port's RX lock, holds it, then dies
    holding it, as a sender killed in the middle of a copy would; with
    `claimed`, killed while handing that many RX entries back.  Returns
    its pid once it holds the lock."""
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        with open(segment, "r+b") as f:
            seg = mmap.mmap(f.fileno(), 0)
            # struct partlink_fabric: a 64-byte header, then 512-byte ports.
            slot = 64 + port * PORT_SLOT
            lock = ctypes.c_void_p.from_buffer(seg, slot)
            if libc.pthread_mutex_lock(ctypes.c_void_p(ctypes.addressof(lock))):
                os._exit(1)
            seg[slot + SLOT_RX_CLAIMED:slot + SLOT_RX_CLAIMED + 4] = \
                claimed.to_bytes(4, "little")
            os.write(ready_w, b"x")
            time.sleep(seconds)
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x", "the helper could not take the lock"
    os.close(ready_r)
    return pid
