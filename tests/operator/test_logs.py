"""Log lines name the DynamicPrefix they concern, in text and in JSON.

The first tests drive the formatters and the context tag directly; the last runs the
operator with ``--log-format json`` against the real control plane and reads its output.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamic_prefix.operator import logs
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    dynamic_prefix,
    new_tag,
    running,
)


@pytest.fixture
def json_operator(
    control_plane: ControlPlane, pool_crds: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`dynamic-prefix run --log-format json`, stopped by PID after the test."""
    process = OperatorProcess(control_plane, tmp_path / "operator.log")
    process.extra_args = ("--log-format", "json")
    with running(process):
        yield process


_TOUCHED = ("", "asyncio", "aiohttp.access")  # what `logs.configure` sets


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Put the loggers `logs.configure` changes back as they were, for later tests."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in _TOUCHED]
    handlers = logging.getLogger().handlers[:]
    try:
        yield
    finally:
        logging.getLogger().handlers[:] = handlers
        for logger, level in saved:
            logger.setLevel(level)


@pytest.fixture
def captured() -> tuple[io.StringIO, logging.Logger]:
    """The root logger configured as `run` does, writing JSON into a buffer."""
    stream = io.StringIO()
    logs.configure("json", verbose=True, stream=stream)
    return stream, logging.getLogger("dynamic_prefix.operator.example")


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_dynamic_prefix_of_their_context(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    log.info("before")
    with logs.concerning("home"):
        log.warning("inside %s", "home")
    log.info("explicit", extra=logs.about("office"))
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, inside, explicit, failed = _lines(stream)
    assert "dynamicPrefix" not in first
    assert inside["dynamicPrefix"] == "home"
    assert (inside["level"], inside["message"]) == ("warning", "inside home")
    assert inside["logger"] == "dynamic_prefix.operator.example"
    assert inside["time"].endswith("Z")
    assert explicit["dynamicPrefix"] == "office"
    assert "ValueError: boom" in failed["exception"]


def test_tasks_and_callbacks_inherit_the_tag_and_siblings_keep_theirs(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured

    async def work(label: str) -> None:
        await asyncio.sleep(0)
        log.info("task %s", label)
        asyncio.get_running_loop().call_soon(log.info, f"callback {label}")
        await asyncio.sleep(0.01)

    async def main() -> None:
        with logs.concerning("outer"):
            inherited = asyncio.create_task(work("inherited"))
        other = asyncio.create_task(work("other"), context=logs.context_for("other"))
        untagged = asyncio.create_task(work("untagged"))
        await asyncio.gather(inherited, other, untagged)

    asyncio.run(main())
    tags = {line["message"]: line.get("dynamicPrefix") for line in _lines(stream)}
    assert tags["task inherited"] == tags["callback inherited"] == "outer"
    assert tags["task other"] == tags["callback other"] == "other"
    assert tags["task untagged"] is tags["callback untagged"] is None


def test_text_lines_show_the_tag_in_brackets() -> None:
    stream = io.StringIO()
    logs.configure("text", verbose=False, stream=stream)
    with logs.concerning("home"):
        logging.getLogger("dynamic_prefix.operator.controller").info("3 pool(s) reconciled")
    logging.getLogger("asyncio").info("hidden unless verbose")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" INFO    operator.controller [home] 3 pool(s) reconciled")


def test_the_operator_tags_every_line_about_a_dynamic_prefix(
    cluster: Cluster, json_operator: OperatorProcess
) -> None:
    operator = json_operator
    tag = new_tag()
    dp, pool = f"logs-{tag}", f"logs-pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:106::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp))

    def reconciled() -> list[dict[str, Any]]:
        return [
            e
            for e in _entries(operator.log())
            if e.get("dynamicPrefix") == dp and e["message"].startswith("1 pool(s) reconciled")
        ]

    # other tests' DynamicPrefixes are handled too: wait for a line about ours
    wait_for(reconciled, what="its pool reconciled, in a line tagged with it")
    cluster.delete(f"{DP_PATH}/{dp}")
    wait_for(
        lambda: any(
            e["message"] == "sources stopped" and e.get("dynamicPrefix") == dp
            for e in _entries(operator.log())
        ),
        what="its sources stopped, in a line tagged with it",
    )
    entries = _entries(operator.log())  # raises if any line is not JSON
    about = [e for e in entries if e.get("dynamicPrefix") == dp]
    messages = {e["message"] for e in about}
    assert "started sources static" in messages
    assert any(m.startswith("DynamicPrefix logs-") and "PrefixReceived" in m for m in messages)
    # a line naming the object, or its pool, is tagged with it
    for entry in entries:
        if dp in entry["message"] or pool in entry["message"]:
            assert entry.get("dynamicPrefix") == dp, entry


def _entries(log: str) -> list[dict[str, Any]]:
    entries = []
    for line in log.splitlines():
        if line.strip():
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= entry.keys(), line
            entries.append(entry)
    return entries
