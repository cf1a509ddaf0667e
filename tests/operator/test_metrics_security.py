"""The operator's HTTP endpoints, as the network sees them: /metrics only over HTTPS and
only for a token the API server allows to get /metrics; probes on loopback; nothing
listening anywhere else by default. Real kube-apiserver (TokenReview, SubjectAccessReview,
RBAC) and the real `dynamic-prefix run` process."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dynamic_prefix.operator.runtime import DEFAULT_HEALTH_PORT, DEFAULT_METRICS_PORT
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "deploy" / "metrics" / "metrics-reader.yaml"


def service_account_token(plane: ControlPlane, name: str) -> str:
    return plane.create_service_account_token("default", name)


def test_metrics_need_a_token_the_api_server_allows(
    cluster: Cluster, control_plane: ControlPlane, operator: OperatorProcess
) -> None:
    tag = secrets.token_hex(3)
    stranger = service_account_token(control_plane, f"stranger-{tag}")
    scraper = service_account_token(control_plane, f"scraper-{tag}")
    cluster.apply(yaml.safe_load(READER.read_text()))
    cluster.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"scraper-{tag}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "dynamic-prefix-metrics-reader",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": f"scraper-{tag}", "namespace": "default"}
            ],
        }
    )
    wait_for(lambda: _answers(operator), what="the operator listening")
    earlier = _reviews(cluster)  # other tests' scrapes, on this shared control plane

    no_token = operator.http_get("/metrics", token="")
    wrong = operator.http_get("/metrics", token="not-a-token")
    forbidden = operator.http_get("/metrics", token=stranger)
    allowed = operator.http_get("/metrics", token=scraper)

    assert no_token[0] == 401
    assert wrong[0] == 401
    assert forbidden == (403, "this token may not get /metrics\n")
    assert allowed[0] == 200
    assert "dynamic_prefix_build_info" in allowed[1]
    # asked again at once: the answers are remembered, the API server is not asked again
    reviews = _reviews(cluster)
    asked = {kind: count - earlier[kind] for kind, count in reviews.items()}
    assert asked["tokenreviews"] == 3  # one per distinct token sent (none without one)
    assert asked["subjectaccessreviews"] == 2  # for the two tokens it authenticated
    assert operator.http_get("/metrics", token=scraper)[0] == 200
    assert operator.http_get("/metrics", token=stranger)[0] == 403
    assert _reviews(cluster) == reviews


def test_probes_answer_on_loopback_in_plain_http_as_the_kubelet_asks(
    operator: OperatorProcess,
) -> None:
    wait_for(lambda: _answers(operator), what="the operator listening")

    assert operator.http_get("/healthz") == (200, "ok\n")
    wait_for(lambda: operator.http_get("/readyz")[0] == 200, what="/readyz ready")
    # each endpoint serves only its own paths
    assert operator.http_get("/nope")[0] == 404


@pytest.fixture
def default_operator(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`dynamic-prefix run` with nothing but a kubeconfig and a Lease of its own."""
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dynamic_prefix.cli.main", "run", "--kubeconfig",
         str(control_plane.kubeconfig), "--lease-name", f"defaults-{secrets.token_hex(4)}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        print("---- operator log ----\n" + (tmp_path / "operator.log").read_text()[-5000:])


def test_by_default_run_listens_on_loopback_only(
    default_operator: subprocess.Popen[bytes],
) -> None:
    expected = {f"127.0.0.1:{DEFAULT_HEALTH_PORT}", f"127.0.0.1:{DEFAULT_METRICS_PORT}"}

    listening = wait_for(
        lambda: (found := _listening(default_operator.pid)) >= expected and found,
        timeout=30,
        what="the default ports listening",
    )
    assert listening == expected


def _answers(operator: OperatorProcess) -> bool:
    try:
        return operator.http_get("/healthz")[0] == 200
    except OSError:
        return False


def _reviews(cluster: Cluster) -> dict[str, int]:
    """How many token and access reviews the operator has asked for (the audit log)."""
    counts = {"tokenreviews": 0, "subjectaccessreviews": 0}
    for event in cluster.operator_writes():
        resource = (event.get("objectRef") or {}).get("resource")
        if resource in counts:
            counts[resource] += 1
    return counts


def _listening(pid: int) -> set[str]:
    """The local addresses of the TCP sockets process ``pid`` listens on."""
    out = subprocess.run(["ss", "-H", "-l", "-t", "-n", "-p"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}
