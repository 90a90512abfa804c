"""A small client for QEMU's qtest protocol.

QEMU started with ``-qtest unix:PATH -accel qtest`` connects to PATH and
then executes text commands ("readl 0x...", "outl 0xcf8 0x...") without a
guest CPU running.  That lets a test drive a device model register by
register, as tests/qtest/*.c does in QEMU's own tree, from Python.
"""

import base64
import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
QEMU = Path(os.environ.get("PARTLINK_QEMU", BUILD / "qemu" / "qemu-system-x86_64"))
FIRMWARE_DIRS = [BUILD / "qemu" / "pc-bios", Path("/usr/share/seabios"), Path("/usr/share/qemu")]

PCI_CONFIG_ADDRESS = 0xCF8
PCI_CONFIG_DATA = 0xCFC


class QtestError(RuntimeError):
    pass


class Qtest:
    """One QEMU process under qtest control; use as a context manager."""

    def __init__(self, *device_args, machine="q35", shared_ram=True, extra_args=(),
                 ram_opts=""):
        if not QEMU.exists():
            raise FileNotFoundError(f"{QEMU} is missing: run 'make qemu'")
        self._tmp = tempfile.TemporaryDirectory(prefix="partlink-qtest-")
        sock_path = os.path.join(self._tmp.name, "qtest.sock")
        self.log_path = os.path.join(self._tmp.name, "qemu.log")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(1)
        listener.settimeout(30)
        self.qmp_path = os.path.join(self._tmp.name, "qmp.sock")
        argv = [str(QEMU), "-accel", "qtest",
                "-qtest", f"unix:{sock_path}", "-display", "none",
                "-nodefaults", "-no-user-config", "-m", "64M",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-d", "guest_errors", "-D", self.log_path]
        if shared_ram:
            # partlink-pci realizes only on RAM that peers can map.
            argv += ["-object", f"memory-backend-memfd,id=ram,size=64M,share=on{ram_opts}",
                     "-machine", f"{machine},memory-backend=ram"]
        else:
            argv += ["-machine", machine]
        for d in FIRMWARE_DIRS:
            argv += ["-L", str(d)]
        for dev in device_args:
            argv += ["-device", dev]
        argv += list(extra_args)
        self.argv = argv
        # QEMU's output goes to a file: a pipe nobody drains would fill up
        # and stall QEMU in the middle of a test.
        self.out_path = os.path.join(self._tmp.name, "qemu.out")
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        try:
            self.sock, _ = listener.accept()
        except socket.timeout:
            self.proc.kill()
            out = self._finish()
            self._tmp.cleanup()
            raise QtestError(f"QEMU did not connect to qtest: {out}") from None
        finally:
            listener.close()
        self.sock.settimeout(30)
        self._buf = b""
        # QEMU connects before it creates the machine; the first answer
        # comes from its main loop, after every device realized.
        try:
            self.command("endianness")
        except BaseException:
            self.close()
            raise

    def _finish(self):
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return Path(self.out_path).read_text(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
            self._finish()
            self._tmp.cleanup()

    def qmp(self, command, **arguments):
        """Run one QMP command on a fresh connection; return the reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(self.qmp_path)
            stream = conn.makefile("rw")

            def receive():
                while True:
                    msg = json.loads(stream.readline())
                    if "event" not in msg:
                        return msg

            receive()  # greeting
            for cmd, args in (("qmp_capabilities", {}), (command, arguments)):
                stream.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
                stream.flush()
                reply = receive()
            return reply

    def alive(self):
        return self.proc.poll() is None

    def guest_errors(self):
        try:
            return Path(self.log_path).read_text()
        except FileNotFoundError:
            return ""

    def command(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                reply, self._buf = self._buf[:nl].decode(), self._buf[nl + 1:]
                if reply.startswith("IRQ "):
                    continue  # asynchronous interrupt notification
                break
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                out = self._finish()
                raise QtestError(f"QEMU closed the qtest socket after {line!r} "
                                 f"(exit status {self.proc.poll()}): {out}")
            self._buf += chunk
        if not reply.startswith("OK"):
            raise QtestError(f"{line!r} -> {reply!r}")
        return reply[3:].strip()

    def _read(self, op, addr):
        return int(self.command(f"{op} {addr:#x}"), 16)

    def readb(self, addr): return self._read("readb", addr)
    def readw(self, addr): return self._read("readw", addr)
    def readl(self, addr): return self._read("readl", addr)
    def inl(self, port): return self._read("inl", port)
    def writeb(self, addr, val): self.command(f"writeb {addr:#x} {val:#x}")
    def writew(self, addr, val): self.command(f"writew {addr:#x} {val:#x}")
    def writel(self, addr, val): self.command(f"writel {addr:#x} {val:#x}")
    def outl(self, port, val): self.command(f"outl {port:#x} {val:#x}")

    def memwrite(self, addr, data):
        """Write bytes into guest RAM, as a guest or a DMA engine would."""
        if data:
            encoded = base64.b64encode(bytes(data)).decode()
            self.command(f"b64write {addr:#x} {len(data):#x} {encoded}")

    def memread(self, addr, size):
        return base64.b64decode(self.command(f"b64read {addr:#x} {size:#x}"))

    # PCI configuration space through the legacy 0xcf8/0xcfc mechanism,
    # which both pc and q35 decode.
    @staticmethod
    def _cfg_addr(devfn, offset, bus=0):
        return 0x80000000 | (bus << 16) | (devfn << 8) | (offset & 0xFC)

    def pci_cfg_readl(self, devfn, offset):
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, offset))
        return self.inl(PCI_CONFIG_DATA)

    def pci_cfg_writel(self, devfn, offset, val):
        self.outl(PCI_CONFIG_ADDRESS, self._cfg_addr(devfn, offset))
        self.outl(PCI_CONFIG_DATA, val)

    def pci_find(self, vendor, device):
        for devfn in range(0, 256):
            ids = self.pci_cfg_readl(devfn, 0)
            if ids == (device << 16) | vendor:
                return devfn
        return None
