"""`cancel_all`: stopping never waits for good on a task that will not stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dynamic_prefix.operator.tasks import cancel_all


def test_tasks_that_stop_are_waited_for_and_one_that_does_not_is_named_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended: list[str] = []

    async def obedient() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # some clean-up after the cancellation
            ended.append("obedient")

    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("its own error, logged by whoever ran it")

    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue  # swallowed, as a 3.11 wait_for could do

    async def scenario() -> tuple[list[str], bool]:
        tasks = [
            asyncio.create_task(obedient(), name="obedient"),
            asyncio.create_task(failing(), name="failing"),
            asyncio.create_task(stubborn(), name="stubborn"),
        ]
        await asyncio.sleep(0.01)
        stuck = await cancel_all(tasks, "the test's tasks", patience=0.5)
        still_running = not tasks[2].done()
        release.set()
        tasks[2].cancel()
        await asyncio.wait([tasks[2]])
        return [t.get_name() for t in stuck], still_running

    with caplog.at_level(logging.ERROR, logger="dynamic_prefix.operator.tasks"):
        stuck, still_running = asyncio.run(scenario())
    assert stuck == ["stubborn"]
    assert still_running
    assert ended == ["obedient"]  # its clean-up was waited for
    assert "the test's tasks did not stop" in caplog.text
    assert "stubborn" in caplog.text


def test_nothing_to_stop_returns_at_once() -> None:
    assert asyncio.run(cancel_all([], "nothing")) == []
