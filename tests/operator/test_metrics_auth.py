"""The metrics authorizer's own rules, with a scripted reviewer and a test clock: how a
header is read, how long an answer is kept, and that an API error is never kept. (What the
real API server answers is in test_metrics_security.py; a clock cannot be set there.)
Also the certificate made at start."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import TemporaryError
from dynamic_prefix.operator.metrics_auth import (
    REMEMBER_SECONDS,
    MetricsAuthorizer,
    Verdict,
    bearer_token,
)
from dynamic_prefix.operator.tls import self_signed, server_context


class Reviewer:
    """Answers TokenReviews for the tokens it knows and SubjectAccessReviews by user."""

    def __init__(self, users: Mapping[str, str], allowed: set[str]) -> None:
        self.users = users
        self.allowed = allowed
        self.asked: list[str] = []
        self.fail = False

    @property
    def requests(self) -> Mapping[str, int]:
        return {"create": len(self.asked)}

    async def create(self, resource: Resource, body: Mapping[str, Any]) -> Any:
        self.asked.append(resource.plural)
        if self.fail:
            raise TemporaryError(503, "etcd is away")
        spec = body["spec"]
        if resource.plural == "tokenreviews":
            user = self.users.get(spec["token"])
            if user is None:
                return {"status": {"authenticated": False}}
            return {"status": {"authenticated": True, "user": {"username": user}}}
        assert spec["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        return {"status": {"allowed": spec["user"] in self.allowed}}

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer abc", "abc"),
        ("bearer abc ", "abc"),
    ],
)
def test_only_a_bearer_token_is_taken(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_verdicts_follow_the_reviews() -> None:
    reviewer = Reviewer({"good": "prometheus", "other": "someone"}, allowed={"prometheus"})
    authorizer = MetricsAuthorizer(reviewer)

    assert await authorizer.judge(None) is Verdict.UNAUTHENTICATED
    assert reviewer.asked == []  # no token: nothing to ask
    assert await authorizer.judge("Bearer nobody") is Verdict.UNAUTHENTICATED
    assert await authorizer.judge("Bearer other") is Verdict.FORBIDDEN
    assert await authorizer.judge("Bearer good") is Verdict.ALLOWED
    assert reviewer.asked == ["tokenreviews", "tokenreviews", "subjectaccessreviews",
                              "tokenreviews", "subjectaccessreviews"]  # fmt: skip


async def test_an_answer_is_kept_for_a_few_seconds_and_then_asked_again() -> None:
    now = [100.0]
    reviewer = Reviewer({"good": "prometheus"}, allowed={"prometheus"})
    authorizer = MetricsAuthorizer(reviewer, clock=lambda: now[0])
    assert await authorizer.judge("Bearer good") is Verdict.ALLOWED
    asked = len(reviewer.asked)

    now[0] += REMEMBER_SECONDS - 0.001
    assert await authorizer.judge("Bearer good") is Verdict.ALLOWED
    assert len(reviewer.asked) == asked
    reviewer.allowed.clear()  # the binding was removed
    now[0] += 0.002
    assert await authorizer.judge("Bearer good") is Verdict.FORBIDDEN
    assert len(reviewer.asked) == asked + 2


async def test_an_api_error_refuses_the_scrape_and_is_not_kept() -> None:
    reviewer = Reviewer({"good": "prometheus"}, allowed={"prometheus"})
    authorizer = MetricsAuthorizer(reviewer)
    reviewer.fail = True

    assert await authorizer.judge("Bearer good") is Verdict.UNAUTHENTICATED
    reviewer.fail = False
    assert await authorizer.judge("Bearer good") is Verdict.ALLOWED


def test_the_certificate_made_at_start_names_every_address_and_is_not_a_ca() -> None:
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    pem, key = self_signed(["2001:db8::5", "node1", "127.0.0.1", "node1"], now=now)

    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("2001:db8::5"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    assert names.get_values_for_type(x509.DNSName) == ["node1"]
    basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False
    assert certificate.not_valid_after_utc == now + dt.timedelta(days=365)
    assert b"PRIVATE KEY" in key


def test_a_mounted_certificate_is_used_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    pem, key = self_signed(["localhost"], now=now)
    (tmp_path / "tls.crt").write_bytes(pem)
    (tmp_path / "tls.key").write_bytes(key)

    context = server_context(tmp_path, [], now=now)

    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(FileNotFoundError):
        server_context(tmp_path / "missing", [], now=now)
