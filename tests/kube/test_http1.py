"""`Http1Client`: HTTP/1.1 framing, keep-alive and the rules for sending twice.

The API server is used where it can show the behaviour (a large chunked list, many
writes over kept-alive connections). The framing cases it never produces on demand (an
answer split byte by byte, chunk extensions and trailers, an answer ended by closing, a
connection dropped halfway, an answer that is not HTTP) come from a scripted server on
loopback, written here: a stand-in, because the real one cannot be told to misbehave.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from dynamic_prefix.kube.client import KubeClient
from dynamic_prefix.kube.config import load_config
from dynamic_prefix.kube.http1 import Http1Client, HttpError, Refused, _Connection
from testbed.controlplane import ControlPlane
from tests.kube.test_watch_own_writes import CONFIGMAPS, _configmap

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A loopback server answering each request with ``handler``; it counts the
    connections it accepted and the requests it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.handler(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[tuple[Scripted, Http1Client]]:
    script = Scripted(handler)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Http1Client(f"http://127.0.0.1:{port}", None, limit=4)
    try:
        yield script, client
    finally:
        client.close()
        server.close()
        for writer in script.writers:
            writer.close()
        await server.wait_closed()


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def get(client: Http1Client, path: str = "/x", timeout: float = 5.0) -> Any:
    return await client.request("GET", path, b"Accept: application/json\r\n", None,
                                timeout=timeout)  # fmt: skip


def test_an_answer_split_byte_by_byte_is_read_whole() -> None:
    async def byte_by_byte(request: bytes, writer: asyncio.StreamWriter) -> None:
        for byte in answer(b'{"a": 1}'):
            writer.write(bytes([byte]))
            await writer.drain()

    async def scenario() -> Any:
        async with scripted(byte_by_byte) as (_, client):
            return await get(client)

    result = asyncio.run(scenario())
    assert (result.status, result.body) == (200, b'{"a": 1}')


def test_chunks_with_extensions_and_trailers_are_joined() -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"4;name=value\r\n{\"a\"\r\n"
                     b"5\r\n: 12}\r\n"
                     b"0\r\nX-Trailer: yes\r\n\r\n")  # fmt: skip
        await writer.drain()

    async def scenario() -> tuple[Any, Any, int]:
        async with scripted(chunked) as (script, client):
            first, second = await get(client), await get(client)
            return first, second, script.connections

    first, second, connections = asyncio.run(scenario())
    assert (first.status, first.body) == (201, b'{"a": 12}')
    assert second.body == first.body
    assert connections == 1  # kept alive after a chunked answer


def test_an_answer_without_length_ends_with_the_connection_and_is_not_reused() -> None:
    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def scenario() -> tuple[Any, int]:
        async with scripted(until_close) as (script, client):
            first = await get(client)
            await get(client)
            return first, script.connections

    first, connections = asyncio.run(scenario())
    assert first.body == b"all of it"
    assert connections == 2


def test_connection_close_is_honoured_and_keep_alive_reuses_one_connection() -> None:
    closing = {"next": False}

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        extra = b"Connection: close\r\n" if closing["next"] else b""
        writer.write(answer(b"{}", extra=extra))
        await writer.drain()

    async def scenario() -> tuple[int, int]:
        async with scripted(handler) as (script, client):
            for _ in range(3):
                await get(client)
            kept = script.connections
            closing["next"] = True
            await get(client)
            closing["next"] = False
            await get(client)
            return kept, script.connections

    assert asyncio.run(scenario()) == (1, 2)


def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}"))
        await writer.drain()

    async def scenario() -> tuple[int, int, int]:
        async with scripted(handler) as (script, client):
            await get(client)
            for writer in script.writers:  # the server drops its idle connection
                writer.close()
            await asyncio.sleep(0.1)
            result = await get(client)
            return result.status, script.connections, len(script.requests)

    assert asyncio.run(scenario()) == (200, 2, 2)


def test_a_connection_lost_halfway_through_an_answer_is_an_error_and_not_sent_again() -> None:
    async def halfway(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
        await writer.drain()
        writer.close()

    async def scenario() -> int:
        async with scripted(halfway) as (script, client):
            with pytest.raises(HttpError, match="connection closed"):
                await get(client)
            return len(script.requests)

    assert asyncio.run(scenario()) == 1


def test_an_answer_that_is_not_http_is_an_error() -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        async with scripted(garbage) as (_, client):
            with pytest.raises(HttpError, match=r"not an HTTP/1\.1 answer"):
                await get(client)

    asyncio.run(scenario())


def test_a_slow_answer_times_out_and_its_connection_is_dropped() -> None:
    async def slow(request: bytes, writer: asyncio.StreamWriter) -> None:
        if len(request) and b"/slow" in request:
            await asyncio.sleep(2)
        writer.write(answer(b"{}"))
        await writer.drain()

    async def scenario() -> int:
        async with scripted(slow) as (script, client):
            with pytest.raises(TimeoutError):
                await get(client, "/slow", timeout=0.2)
            await get(client, "/fast")
            return script.connections

    assert asyncio.run(scenario()) == 2


def test_a_refused_request_sends_nothing() -> None:
    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}"))
        await writer.drain()

    async def scenario() -> int:
        async with scripted(handler) as (script, client):
            with pytest.raises(Refused):
                await client.request("PATCH", "/x", b"", b"{}", timeout=1, may_send=lambda: False)
            await asyncio.sleep(0.1)
            return len(script.requests)

    assert asyncio.run(scenario()) == 0


def test_the_api_server_large_chunked_list_and_many_writes_over_kept_alive_connections(
    control_plane: ControlPlane, namespace: str
) -> None:
    """300 ConfigMaps listed (a large answer the API server sends chunked) read the same
    as through `json` and urllib; 300 concurrent patches over at most 64 connections."""

    async def scenario() -> tuple[list[str], list[str], int]:
        config = load_config(str(control_plane.kubeconfig))
        async with KubeClient(config) as kube:
            await asyncio.gather(*(kube.create(CONFIGMAPS, _configmap(f"m{i}", namespace, "0"))
                                   for i in range(300)))  # fmt: skip
            await asyncio.gather(*(kube.patch(CONFIGMAPS, f"m{i}", {"data": {"value": str(i)}},
                                              namespace=namespace)
                                   for i in range(300)))  # fmt: skip
            listed = await kube.list_objects(CONFIGMAPS, namespace=namespace)
            http = kube._http
            assert http is not None
            connections = len(http._open)
        values = [
            item["data"]["value"]
            for item in listed["items"]
            if item["metadata"]["name"][1:].isdigit()
        ]
        raw = control_plane.request("GET", CONFIGMAPS.path(namespace=namespace))
        reference = [item["data"]["value"] for item in json.loads(raw.body)["items"]
                     if item["metadata"]["name"][1:].isdigit()]  # fmt: skip
        return values, reference, connections

    values, reference, connections = asyncio.run(scenario())
    assert sorted(values, key=int) == [str(i) for i in range(300)]
    assert values == reference
    assert 1 <= connections <= 64


def test_tls_is_verified_against_the_servers_authority(control_plane: ControlPlane) -> None:
    """A context that does not trust the API server's certificate fails to connect."""

    async def scenario() -> None:
        client = Http1Client(control_plane.server, ssl.create_default_context(), limit=1)
        try:
            with pytest.raises(HttpError, match="cannot connect"):
                await get(client, "/version")
        finally:
            client.close()

    asyncio.run(scenario())


def test_objects_are_held_without_managed_fields(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The API server sends managedFields with every object; the operator never reads
    them and they are the bulk of what it would hold: answers, lists and watch events
    come without them."""

    async def scenario() -> list[dict[str, Any]]:
        config = load_config(str(control_plane.kubeconfig))
        async with KubeClient(config) as kube:
            created = await kube.create(CONFIGMAPS, _configmap("held", namespace, "0"))
            patched = await kube.patch(CONFIGMAPS, "held", {"data": {"value": "1"}},
                                       namespace=namespace)  # fmt: skip
            got = await kube.get(CONFIGMAPS, "held", namespace=namespace)
            listed = await kube.list_objects(CONFIGMAPS, namespace=namespace)
            watched = []
            async for event in kube.watch(CONFIGMAPS, namespace=namespace, timeout_seconds=1):
                watched.append(event.object)
            return [created, patched, got, *listed["items"], *watched]

    seen = asyncio.run(scenario())
    raw = control_plane.request("GET", CONFIGMAPS.path("held", namespace=namespace)).json()
    assert "managedFields" in raw["metadata"]  # the server does send them
    assert len(seen) >= 5
    assert all("managedFields" not in obj["metadata"] for obj in seen)
    assert seen[1]["data"] == {"value": "1"}


def test_an_answer_without_a_body_by_its_status_ends_at_its_headers() -> None:
    """204 and 304 have no body even without a Content-Length: the answer is complete at
    the end of its headers, and the connection is kept for the next request."""

    async def no_content(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def scenario() -> tuple[Any, int]:
        async with scripted(no_content) as (script, client):
            first = await get(client, timeout=2)
            await get(client, timeout=2)
            return first, script.connections

    first, connections = asyncio.run(scenario())
    assert (first.status, first.body) == (204, b"")
    assert connections == 1


@pytest.mark.parametrize(
    "chunks",
    [b"-64\r\nab\r\n0\r\n\r\n", b"0x2\r\nab\r\n0\r\n\r\n", b"2\r\nabXX0\r\n\r\n", b"\r\nab\r\n"],
    ids=["negative", "0x prefix", "no CRLF after the data", "empty size"],
)
def test_a_malformed_chunked_answer_is_an_error_not_a_hang(chunks: bytes) -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
        await writer.drain()

    async def scenario() -> None:
        async with scripted(chunked) as (_, client):
            with pytest.raises(HttpError, match="chunk"):
                await get(client, timeout=2)

    asyncio.run(scenario())


def test_a_write_is_not_sent_twice_and_a_closed_client_sends_nothing() -> None:
    """The server reads a request on a kept-alive connection and drops it unanswered: a
    GET is sent again on a new connection, a write is not (it may have been applied: its
    caller decides). After close, nothing is sent."""
    drop = {"next": False}

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        if drop["next"]:
            drop["next"] = False
            writer.close()  # read, not answered
            return
        writer.write(answer(b"{}"))
        await writer.drain()

    async def scenario() -> list[int]:
        counts = []
        async with scripted(handler) as (script, client):
            await get(client)
            drop["next"] = True
            await get(client)  # dropped once, sent again
            counts.append(len(script.requests))
            drop["next"] = True
            with pytest.raises(HttpError, match="connection closed"):
                await client.request("PATCH", "/x", b"", b"{}", timeout=2)
            counts.append(len(script.requests))
            client.close()
            with pytest.raises(HttpError, match="closed"):
                await get(client)
            counts.append(len(script.requests))
        return counts

    assert asyncio.run(scenario()) == [3, 4, 4]


def test_bytes_beyond_an_answer_retire_its_connection() -> None:
    async def extra(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}") + b"XTRA")
        await writer.drain()

    async def scenario() -> tuple[Any, int]:
        async with scripted(extra) as (script, client):
            first = await get(client)
            await get(client)
            return first, script.connections

    first, connections = asyncio.run(scenario())
    assert first.body == b"{}"
    assert connections == 2


def test_a_request_cancelled_in_the_step_its_answer_arrives_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM cancels requests in flight; one whose answer is read in that same step
    must end cancelled. Python 3.11's ``wait_for`` returned the answer instead, and the
    informer around it went on watching, so the operator never stopped (and never gave
    its Lease up). The answer's arrival is made to cancel the request in the same step."""
    requester: list[asyncio.Task[Any]] = []
    receive = _Connection.data_received

    def received_then_cancelled(connection: _Connection, data: bytes) -> None:
        receive(connection, data)
        requester[0].cancel()

    monkeypatch.setattr(_Connection, "data_received", received_then_cancelled)

    async def immediate(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}"))
        await writer.drain()

    async def scenario() -> str:
        async with scripted(immediate) as (_, client):
            task = asyncio.create_task(get(client))
            requester.append(task)
            try:
                result = await task
            except asyncio.CancelledError:
                return "cancelled"
            return f"answered {result.status} despite the cancellation"

    assert asyncio.run(scenario()) == "cancelled"
