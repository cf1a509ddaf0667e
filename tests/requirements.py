"""What a test needs of the machine, and what happens when the machine does not have it.

Without root or `ip netns`, tests that need network namespaces are skipped, so the suite
can run on a developer's laptop (README: "Running the tests without root"). In CI (the
environment variable ``CI`` set, as `.ci/run` does) they fail instead: a skipped half of
the suite must never pass green there.
"""

from __future__ import annotations

import os

import pytest

from testbed.netns import namespaces_supported


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(what: str) -> None:
    """Skip the test for lack of ``what`` (fail it in CI)."""
    if in_ci():
        pytest.fail(f"{what} (CI is set: a test that cannot run here fails instead of skipping)")
    pytest.skip(what)


def needs_namespaces() -> None:
    """Skip (in CI: fail) the test where network namespaces cannot be made."""
    supported, reason = namespaces_supported()
    if not supported:
        unavailable(f"network namespaces unavailable: {reason}")
