"""Waiting for a node interface to appear or go, by netlink link events (no polling).

A DynamicPrefix may name an interface that does not exist yet when its source starts: a
VLAN or bridge brought up after the operator, a node still booting, a veth added later.
A link-bound source then raises `dynamic_prefix.sources.base.InterfaceMissing`; the
source manager reports it and waits (`wait_for_interface`), which returns as soon as the
kernel announces the link, and starts the source again. The kernel sends an
``RTM_NEWLINK`` to the ``RTMGRP_LINK`` multicast group for every link created or
renamed, so the wait costs nothing while the interface is absent and ends within
milliseconds of it appearing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from typing import Final

from dynamic_prefix.link.rtnetlink import RTMGRP_LINK

log = logging.getLogger(__name__)

_RECEIVE_SIZE: Final = 65536
_FALLBACK_POLL_SECONDS: Final = 1.0  # only if netlink sockets are refused (never seen)


def interface_index(interface: str) -> int | None:
    """The interface's index, or None if there is no such interface here."""
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        return None


def on_host_network() -> bool | None:
    """Whether this process runs in the node's network namespace, when that can be told.

    The Deployment passes the pod's and the node's IP from the downward API
    (``POD_IP``, ``HOST_IP``): they are equal exactly when the pod uses the host network.
    Outside Kubernetes, or without them, it cannot be told (None).
    """
    pod_ip, host_ip = os.environ.get("POD_IP"), os.environ.get("HOST_IP")
    if not pod_ip or not host_ip:
        return None
    return pod_ip == host_ip


def open_link_events() -> socket.socket:
    """A non-blocking route netlink socket subscribed to every link change on the node;
    `OSError` if netlink is refused."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.setblocking(False)
        sock.bind((0, RTMGRP_LINK))
    except OSError:
        sock.close()
        raise
    return sock


async def wait_for_interface(interface: str) -> int:
    """Return the index of ``interface`` once it exists, at once if it does already."""
    async with _LinkEvents() as events:
        while (ifindex := interface_index(interface)) is None:
            await events.next()
        return ifindex


async def wait_until_gone(interface: str, ifindex: int) -> None:
    """Return once ``interface`` no longer has index ``ifindex`` (deleted, renamed away,
    or re-created as another link)."""
    async with _LinkEvents() as events:
        while interface_index(interface) == ifindex:
            await events.next()


class _LinkEvents:
    """A route netlink socket subscribed to link changes, opened before the first look
    so that no change after it goes unnoticed."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None

    async def __aenter__(self) -> _LinkEvents:
        try:
            self._socket = open_link_events()
        except OSError as exc:
            log.warning("cannot watch links over netlink (%s); looking every second", exc)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    async def next(self) -> None:
        """Wait until the kernel reports some link change (or, without netlink, a second)."""
        sock = self._socket
        if sock is None:
            await asyncio.sleep(_FALLBACK_POLL_SECONDS)
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_recv(sock, _RECEIVE_SIZE)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:  # messages lost: looking again is the answer
                raise
        # take whatever else is queued now: one look answers them all
        with contextlib.suppress(OSError):  # BlockingIOError once drained
            while sock.recv(_RECEIVE_SIZE):
                pass
