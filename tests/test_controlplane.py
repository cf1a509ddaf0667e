"""The test control plane itself: it answers, it enforces RBAC, it runs beside another."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.controlplane import ApiResponse, ControlPlane, ControlPlaneError

RBAC_PROPAGATION_TIMEOUT = 10.0


def eventually(probe: Callable[[], ApiResponse], *, status: int) -> ApiResponse:
    """Retry `probe` until it answers `status`: RBAC changes reach the authorizer by watch."""
    deadline = time.monotonic() + RBAC_PROPAGATION_TIMEOUT
    response = probe()
    while response.status != status and time.monotonic() < deadline:
        time.sleep(0.05)
        response = probe()
    return response


class TestReadiness:
    def test_answers_readyz_as_admin(self, control_plane: ControlPlane) -> None:
        response = control_plane.request("GET", "/readyz")

        assert (response.status, response.body) == (200, b"ok")

    def test_admin_kubeconfig_drives_kubectl(self, control_plane: ControlPlane) -> None:
        result = control_plane.kubectl(
            "get", "namespace", "default", "-o", "jsonpath={.metadata.name}"
        )

        assert result.stdout == "default"

    def test_unknown_token_is_unauthorized(self, control_plane: ControlPlane) -> None:
        response = control_plane.request("GET", "/api/v1/namespaces", token="not-a-token")

        assert response.status == 401


class TestRbac:
    def test_fresh_service_account_may_not_list_secrets(
        self, control_plane: ControlPlane, namespace: str
    ) -> None:
        token = control_plane.create_service_account_token(namespace, "nobody")

        response = control_plane.request(
            "GET", "/api/v1/namespaces/kube-system/secrets", token=token
        )

        assert response.status == 403
        assert response.json()["reason"] == "Forbidden"

    def test_role_binding_allows_listing_configmaps_in_its_namespace_only(
        self, control_plane: ControlPlane, namespace: str, tmp_path: Path
    ) -> None:
        control_plane.kubectl("create", "configmap", "visible", "-n", namespace)
        token = control_plane.create_service_account_token(namespace, "reader")
        own_configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
        assert control_plane.request("GET", own_configmaps, token=token).status == 403

        control_plane.kubectl(
            "create", "role", "reader", "--verb=get,list", "--resource=configmaps", "-n", namespace
        )
        control_plane.kubectl(
            "create", "rolebinding", "reader", "--role=reader",
            f"--serviceaccount={namespace}:reader", "-n", namespace,
        )  # fmt: skip

        allowed = eventually(
            lambda: control_plane.request("GET", own_configmaps, token=token), status=200
        )
        assert allowed.status == 200
        assert allowed.json()["kind"] == "ConfigMapList"
        kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "reader.kubeconfig")
        listed = control_plane.kubectl(
            "--kubeconfig", str(kubeconfig), "get", "configmaps", "-n", namespace, "-o", "name"
        )
        assert "configmap/visible" in listed.stdout.split()
        for forbidden in (
            "/api/v1/namespaces/kube-system/configmaps",
            f"/api/v1/namespaces/{namespace}/secrets",
        ):
            assert control_plane.request("GET", forbidden, token=token).status == 403, forbidden

    def test_token_for_an_existing_service_account_is_minted_without_creating(
        self, control_plane: ControlPlane, namespace: str
    ) -> None:
        control_plane.kubectl("create", "serviceaccount", "existing", "-n", namespace)

        token = control_plane.create_service_account_token(namespace, "existing", create=False)

        review = control_plane.request(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        user = review.json()["status"]["user"]["username"]
        assert user == f"system:serviceaccount:{namespace}:existing"


class TestLifecycle:
    def test_two_control_planes_run_side_by_side_and_stop_cleanly(
        self, control_plane: ControlPlane
    ) -> None:
        with ControlPlane() as second:
            server, kubeconfig = second.server, second.kubeconfig
            assert server != control_plane.server
            assert second.request("GET", "/readyz").status == 200
            second.kubectl("create", "namespace", "only-in-second")
            seen_by_first = control_plane.kubectl("get", "namespace", "only-in-second", check=False)
            assert seen_by_first.returncode != 0
            admin_of_first = second.request(
                "GET", "/api/v1/namespaces", token=control_plane.admin_token
            )
            assert admin_of_first.status == 401

        second.stop()  # a second stop is harmless
        assert not kubeconfig.exists()
        with pytest.raises(urllib.error.URLError, match="refused"):  # nobody listens there
            urllib.request.urlopen(f"{server}/readyz", timeout=5)
        assert control_plane.request("GET", "/readyz").status == 200

    def test_flags_given_for_the_api_server_reach_it(self) -> None:
        service = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "lb", "namespace": "default"},
                   "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}  # fmt: skip

        with ControlPlane(apiserver_flags={"--service-node-port-range": "40000-40001"}) as plane:
            created = plane.request("POST", "/api/v1/namespaces/default/services", body=service)

        assert created.status == 201, created.body
        assert created.json()["spec"]["ports"][0]["nodePort"] in (40000, 40001)

    def test_missing_binaries_are_an_error_naming_the_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))

        with pytest.raises(ControlPlaneError, match="KUBEBUILDER_ASSETS"):
            ControlPlane().start()

    def test_a_daemon_dying_at_start_is_reported_with_its_log(self, tmp_path: Path) -> None:
        for name in ("etcd", "kube-apiserver"):
            fake = tmp_path / name
            fake.write_text(f"#!/bin/sh\necho '{name}: cannot start today' >&2\nexit 3\n")
            fake.chmod(0o755)

        with pytest.raises(ControlPlaneError, match="etcd: cannot start today"):
            ControlPlane(assets=tmp_path).start()
