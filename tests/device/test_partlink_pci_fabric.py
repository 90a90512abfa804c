"""The fabric protocol from the device's side, against a scripted
partlinkd (FakeDaemon): file descriptors belong to their message."""

import os
import socket
import struct

from abi import ABI
from fabric import MSG, WELCOME, FakeDaemon


def test_fds_do_not_move_to_a_later_message():
    """A PEER_DOWN that carries an fd, then a WELCOME without one: the
    WELCOME is malformed (no fabric segment), it must not take the fd
    that came with the PEER_DOWN."""
    with FakeDaemon() as d:
        a = d.adapter(welcome=False)
        fd = os.open(d.segment, os.O_RDWR)
        try:
            body = struct.pack("=II", 9, 1)
            socket.send_fds(d.conn, [MSG.pack(ABI["PARTLINK_MSG_PEER_DOWN"],
                                              len(body)) + body], [fd])
        finally:
            os.close(fd)
        body = WELCOME.pack(d.port, d.epoch, 1, 0)
        d.conn.sendall(MSG.pack(ABI["PARTLINK_MSG_WELCOME"], len(body)) + body)
        assert d.closed_by_device(), "the device took a WELCOME without its fd"
        assert not a.readl("LINK") & ABI["PARTLINK_LINK_UP"]
        assert a.q.alive()


def test_a_welcome_with_its_fd_still_registers():
    with FakeDaemon() as d:
        a = d.adapter(welcome=True)
        assert a.readl("LINK") & ABI["PARTLINK_LINK_UP"]
