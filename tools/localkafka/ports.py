"""Loopback port helpers: never bind anything but 127.0.0.1."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def pick_free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (the kernel chooses them).

    All sockets stay open until every port is chosen, so the kernel cannot hand the
    same port out twice.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now.

    SO_REUSEADDR mirrors what the JVM sets on server sockets, so connections of a
    previous broker lingering in TIME_WAIT do not count as "taken".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_answers(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False
