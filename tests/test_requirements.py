"""What happens to a test the machine cannot run: skipped on a laptop, failed in CI."""

from __future__ import annotations

import pytest

from tests import requirements


def test_without_namespaces_a_test_is_skipped_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(requirements, "namespaces_supported", lambda: (False, "not root"))

    with pytest.raises(pytest.skip.Exception, match="network namespaces unavailable: not root"):
        requirements.needs_namespaces()


def test_in_ci_it_fails_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(requirements, "namespaces_supported", lambda: (False, "not root"))

    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        requirements.needs_namespaces()


def test_with_namespaces_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(requirements, "namespaces_supported", lambda: (True, ""))

    requirements.needs_namespaces()
