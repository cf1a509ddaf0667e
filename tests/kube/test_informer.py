"""The informer's loop with a scripted list/watch stand-in: what it hands over, in which
order, and what a relist after 410 Gone reports. (The real watch, against a real API
server, is exercised by every operator test; 410 cannot be provoked there on demand.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dynamic_prefix.kube.client import Resource, WatchEvent
from dynamic_prefix.kube.errors import Gone, TemporaryError
from dynamic_prefix.kube.informer import Informer

THINGS = Resource("example.io", "v1", "things", namespaced=False, kind="Thing")


def thing(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version)}}


class Script:
    """Answers list and watch calls from queues, then blocks (as a quiet watch does)."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str | None] = []

    async def list_objects(self, resource: Resource) -> Any:
        items = self.lists.pop(0)
        version = max((int(i["metadata"]["resourceVersion"]) for i in items), default=1)
        return {"items": items, "metadata": {"resourceVersion": str(version)}}

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str | None = None,
        own_writes: bool = False,
        keep_line: Callable[[bytes], bool] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        self.watched_from.append(resource_version)
        for step in self.watches.pop(0) if self.watches else []:
            if isinstance(step, Exception):
                raise step
            yield step
        await asyncio.Event().wait()


async def run_until(informer: Informer, seen: list[Any], count: int) -> None:
    task = asyncio.create_task(informer.run())
    try:
        async with asyncio.timeout(5):
            while len(seen) < count:
                await asyncio.sleep(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_list_then_the_watch_from_its_version_in_order() -> None:
    script = Script(
        [[thing("a", 5), thing("b", 7)]],
        [[WatchEvent("MODIFIED", thing("a", 8)), WatchEvent("BOOKMARK", thing("", 9)),
          WatchEvent("OWN_WRITE", thing("", 10)), WatchEvent("DELETED", thing("b", 11))]],
    )  # fmt: skip
    seen: list[tuple[str | None, str]] = []
    informer = Informer(script, THINGS, lambda t, o: seen.append((t, o["metadata"]["name"])))

    await run_until(informer, seen, 4)

    assert seen == [(None, "a"), (None, "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert script.watched_from == ["7"]
    assert informer.listed.is_set()
    assert informer.echoes == 1


async def test_a_relist_after_gone_reports_what_vanished_meanwhile() -> None:
    script = Script(
        [[thing("a", 5), thing("b", 7)], [thing("a", 20), thing("c", 21)]],
        [[Gone(410, "too old")]],
    )
    seen: list[tuple[str | None, str]] = []
    informer = Informer(script, THINGS, lambda t, o: seen.append((t, o["metadata"]["name"])))

    await run_until(informer, seen, 5)

    assert seen == [(None, "a"), (None, "b"), (None, "a"), (None, "c"), ("DELETED", "b")]
    assert script.watched_from == ["7", "21"]


async def test_on_listed_is_called_once_after_the_first_list_even_with_listed_set() -> None:
    script = Script(
        [[thing("a", 5)], [thing("a", 20)]],
        [[Gone(410, "too old")]],
    )
    seen: list[tuple[str | None, str]] = []
    told: list[int] = []
    already = asyncio.Event()
    already.set()  # an earlier informer of the kind (a CRD removed and installed again)
    informer = Informer(
        script,
        THINGS,
        lambda t, o: seen.append((t, o["metadata"]["name"])),
        listed=already,
        on_listed=lambda: told.append(len(seen)),
    )

    await run_until(informer, seen, 2)  # the first list, then the relist after 410

    assert told == [1]  # after the first list was handed over, and not again


async def test_an_api_error_is_retried_from_the_same_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dynamic_prefix.kube.informer.INITIAL_BACKOFF", 0.0)
    script = Script(
        [[thing("a", 5)]],
        [[TemporaryError(503, "etcd is away")], [WatchEvent("MODIFIED", thing("a", 6))]],
    )
    seen: list[tuple[str | None, str]] = []
    informer = Informer(script, THINGS, lambda t, o: seen.append((t, o["metadata"]["name"])))

    await run_until(informer, seen, 2)

    assert seen == [(None, "a"), ("MODIFIED", "a")]
    assert script.watched_from == ["5", "5"]  # no relist: nothing was lost


async def test_an_async_handler_is_awaited_before_the_next_event() -> None:
    script = Script([[thing("a", 1), thing("b", 2)]], [])
    order: list[str] = []

    async def slow(event_type: str | None, obj: dict[str, Any]) -> None:
        order.append(f"start {obj['metadata']['name']}")
        await asyncio.sleep(0.01)
        order.append(f"end {obj['metadata']['name']}")

    await run_until(Informer(script, THINGS, slow), order, 4)

    assert order == ["start a", "end a", "start b", "end b"]
