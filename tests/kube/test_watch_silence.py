"""A watch that falls silent is watched again from the last version seen.

An API server has been seen to keep a watch open and stop delivering to it (see
`WATCH_SILENCE_SECONDS`); the real one cannot be made to do that on demand, so a
scripted server on loopback stands in: it answers the list, then holds each watch open
without a byte after its scripted events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.kube.informer import Informer

THINGS = Resource("example.io", "v1", "things", namespaced=False, kind="Thing")


def thing(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version)}}


class QuietServer:
    """Answers the list with one thing; each watch gets its scripted events, then silence."""

    def __init__(self, watches: list[list[dict[str, Any]]]) -> None:
        self.watches = watches
        self.watch_queries: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                target = head.split(" ", 2)[1]
                if "watch=true" not in target:
                    body = json.dumps({"items": [thing("a", 1)],
                                       "metadata": {"resourceVersion": "1"}}).encode()  # fmt: skip
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                    await writer.drain()
                    continue
                self.watch_queries.append(target)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
                for event in self.watches.pop(0) if self.watches else []:
                    line = json.dumps(event).encode() + b"\n"
                    writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
                await asyncio.Event().wait()  # open, and not a byte more
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return  # the client went away, or the test is over
        finally:
            writer.close()


async def watch_through_silence(silence: float) -> tuple[list[tuple[str | None, str]], list[str]]:
    """What an informer hands over in 4 s, and the watch requests the server saw."""
    server = QuietServer([[{"type": "ADDED", "object": thing("b", 2)}],
                          [{"type": "MODIFIED", "object": thing("b", 3)}]])  # fmt: skip
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    seen: list[tuple[str | None, str]] = []
    try:
        config = ClusterConfig(server=f"http://127.0.0.1:{port}")
        async with KubeClient(config, watch_silence=silence) as client:
            informer = Informer(client, THINGS, lambda kind, obj: seen.append(
                (kind, obj["metadata"]["resourceVersion"])))  # fmt: skip
            task = asyncio.create_task(informer.run())
            await asyncio.sleep(4)
            task.cancel()
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()
    return seen, server.watch_queries


def test_a_silent_watch_is_watched_again_from_the_last_version_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    seen, queries = asyncio.run(watch_through_silence(1.0))

    assert seen == [(None, "1"), ("ADDED", "2"), ("MODIFIED", "3")]
    assert "resourceVersion=1" in queries[0]
    assert "resourceVersion=2" in queries[1]  # resumed where the silent watch stopped
    alarms = [r for r in caplog.records
              if r.name.startswith("dynamic_prefix") and r.levelno >= logging.WARNING]  # fmt: skip
    assert not alarms  # a silence is not an error: no warning, no backoff


def test_a_watch_is_not_given_up_before_its_silence_is_over() -> None:
    seen, queries = asyncio.run(watch_through_silence(60))

    assert seen == [(None, "1"), ("ADDED", "2")]
    assert len(queries) == 1
