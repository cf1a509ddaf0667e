"""Driving the operator from outside, as users do: a `dynamic-prefix run` process, JSON API calls.

Used by the integration tests and the demo.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from testbed.controlplane import ControlPlane

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 20.0, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}"
    )


class Cluster:
    """Small JSON helpers over the control plane's HTTP API (faster than kubectl)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def apply(self, obj: dict[str, Any]) -> None:
        self.plane.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(obj))

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.plane.request("GET", path)
        if response.status == 404:
            return None
        assert response.status == 200, response.body
        data: dict[str, Any] = response.json()
        return data

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.plane.request("PATCH", path, body=body)
        assert response.status == 200, response.body
        data: dict[str, Any] = response.json()
        return data

    def delete(self, path: str) -> None:
        response = self.plane.request("DELETE", path)
        assert response.status in (200, 202, 404), response.body

    def operator_writes(self) -> list[dict[str, Any]]:
        """Write requests the operator has made, as the API server's audit log saw them."""
        return self.plane.audit_writes(user_agent_prefix="dynamic-prefix")


class OperatorProcess:
    """One `dynamic-prefix run` process; its log is kept for the test's failure report."""

    def __init__(self, plane: ControlPlane, log_path: Path) -> None:
        self.plane = plane
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.kubeconfig: Path | None = None  # another identity than the admin's, if set
        self.extra_args: tuple[str, ...] = ()
        # a Lease of its own, so operators of different tests never wait for each other
        self.lease_name = f"dynamic-prefix-test-{secrets.token_hex(4)}"
        self.health_port = 0
        self.metrics_port = 0

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.health_port, self.metrics_port = _free_port(), _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dynamic_prefix.cli.main", "run", "--kubeconfig",
             str(self.kubeconfig or self.plane.kubeconfig),
             "--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port),
             "--lease-name", self.lease_name, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()
        return self

    def http_get(self, path: str, *, token: str | None = None) -> tuple[int, str]:
        """GET one of the operator's own endpoints: /healthz and /readyz in plain HTTP,
        /metrics over HTTPS (its certificate is self-signed) with ``token`` as bearer
        (None: the admin's; "": none)."""
        if path != "/metrics":
            request = urllib.request.Request(f"http://127.0.0.1:{self.health_port}{path}")
            context = None
        else:
            request = urllib.request.Request(f"https://127.0.0.1:{self.metrics_port}{path}")
            bearer = self.plane.admin_token if token is None else token
            if bearer:
                request.add_header("Authorization", f"Bearer {bearer}")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
