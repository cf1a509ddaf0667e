"""`dynamic-prefix status` against the real control plane, with the operator running."""

from __future__ import annotations

import json
import secrets

import pytest

from dynamic_prefix.cli.main import main
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    ALL_KINDS,
    CILIUM_LB_POOL,
    PoolKind,
    create_dynamic_prefix,
    dynamic_prefix,
    fill_and_rotate,
    wait_condition_status,
)


def test_status_shows_the_prefix_and_whether_each_pool_is_in_sync(
    cluster: Cluster, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = secrets.token_hex(3)
    dp, pool = f"status-{tag}", f"status-pool-{tag}"
    ranges = [{"name": "lb", "start": "::f000:0:0:0", "end": "::f000:0:0:ff"}]
    cluster.apply(dynamic_prefix(dp, "2001:db8:57::/64", ranges=ranges, history=None))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))
    kubeconfig = str(cluster.plane.kubeconfig)

    def ours() -> dict[str, object] | None:
        main(["status", "--kubeconfig", kubeconfig, "-o", "json"])
        report = json.loads(capsys.readouterr().out)
        found = [e for e in report["dynamicPrefixes"] if e["name"] == dp]
        # Ready alone can come first, from "0/0 pools" before the pool is seen
        in_sync = found and found[0]["pools"] and found[0]["pools"][0]["inSync"]
        return found[0] if found and found[0]["ready"] == "True" and in_sync else None

    entry = wait_for(ours, what="the DynamicPrefix ready and its pool in sync in status")
    assert entry["currentPrefix"] == "2001:db8:57::/64"
    assert entry["source"] == "static"
    assert entry["pools"] == [
        {"kind": "CiliumLoadBalancerIPPool", "namespace": "", "name": pool, "reference": "lb",
         "inSync": True, "problem": ""}
    ]  # fmt: skip

    # A pool the operator does not know yet how to fill (stopped) shows as out of sync.
    operator.stop()
    cluster.patch(CILIUM_LB_POOL.path(pool), {"spec": {"blocks": []}})
    code = main(["status", "--kubeconfig", kubeconfig])
    out = capsys.readouterr().out
    assert code == 1
    assert dp in out
    assert f"CiliumLoadBalancerIPPool   -           {pool}" in out
    assert "differs from what it should hold" in out


def test_status_lists_services_judged_as_the_operator_judges_them(
    cluster: Cluster, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = secrets.token_hex(3)
    dp, good, bad = f"svc-status-{tag}", f"web-{tag}", f"bad-{tag}"
    obj = dynamic_prefix(dp, "2001:db8:58::/64")
    obj["spec"]["transition"]["mode"] = "ha"
    cluster.apply(obj)
    services = "/api/v1/namespaces/default/services"
    for name, suffix in ((good, "::ffff:0:0:2"), (bad, "::1")):
        annotations = {"dynamic-prefix.io/name": dp, "dynamic-prefix.io/service-address-range":
                       "lb", "dynamic-prefix.io/suffix": suffix}  # fmt: skip
        cluster.apply({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        })  # fmt: skip
    kubeconfig = str(cluster.plane.kubeconfig)
    try:

        def ours() -> dict[str, object] | None:
            main(["status", "--kubeconfig", kubeconfig, "-o", "json"])
            report = json.loads(capsys.readouterr().out)
            found = [e for e in report["dynamicPrefixes"] if e["name"] == dp]
            in_sync = found and [s["inSync"] for s in found[0]["services"]] == [False, True]
            return found[0] if in_sync else None

        entry = wait_for(ours, what="the good Service in sync, the bad one not")
        services_shown = {s["name"]: s for s in entry["services"]}  # type: ignore[attr-defined]
        assert "is outside" in services_shown[bad]["problem"]
        assert services_shown[good]["problem"] == ""
        assert main(["status", "--kubeconfig", kubeconfig]) == 1  # a Service is out of sync
        out = capsys.readouterr().out
        assert f"Service   default     {bad}" in out
    finally:
        for name in (good, bad):
            cluster.delete(f"{services}/{name}")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[kind.id for kind in ALL_KINDS])
def test_a_converged_pool_of_every_kind_is_in_sync_in_status_and_after_a_rotation(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    kind: PoolKind,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Status judges a pool exactly as the operator does: a Calico template is judged with
    the pools generated from it (the bug: status planned it without them, said 0/1)."""
    tag = secrets.token_hex(3)
    dp = f"judge-{kind.id}-{tag}"
    where = namespace if kind.namespaced else None
    pools = [(kind, f"{dp}-pool", where)]
    create_dynamic_prefix(cluster, dynamic_prefix(dp, "2001:db8:59::/64"))
    fill_and_rotate(cluster, dp, pools, "2001:db8:59::/64", "2001:db8:5a::/64")
    wait_condition_status(cluster, dp, "PoolsSynced", "True")
    kubeconfig = str(cluster.plane.kubeconfig)

    code = main(["status", "--kubeconfig", kubeconfig, "-o", "json"])
    report = json.loads(capsys.readouterr().out)
    (entry,) = [e for e in report["dynamicPrefixes"] if e["name"] == dp]
    assert [p["inSync"] for p in entry["pools"]] == [True], entry["pools"]
    assert [p["name"] for p in entry["pools"]] == [f"{dp}-pool"], "generated pools not listed"
    ours_healthy = entry["ready"] == "True"
    assert ours_healthy
    del code  # other tests' objects on the shared control plane may be unhealthy


def test_status_judges_the_bgp_announcements_as_the_operator_does(
    cluster: Cluster, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = secrets.token_hex(3)
    dp, pool = f"bgp-status-{tag}", f"bgp-status-{tag}"
    subnet = {"name": "lb", "offset": 1, "prefixLength": 64,
              "bgp": {"advertise": True, "community": "65001:7"}}  # fmt: skip
    create_dynamic_prefix(cluster, dynamic_prefix(dp, "2001:db8:5900::/56", ranges=(),
                                                  subnets=[subnet]))  # fmt: skip
    manifest = CILIUM_LB_POOL.manifest(pool, dp=dp, address_range=None, subnet="lb", entries=[])
    manifest["spec"]["serviceSelector"] = {"matchLabels": {"app": tag}}
    cluster.apply(manifest)
    kubeconfig = str(cluster.plane.kubeconfig)
    advert = f"/apis/cilium.io/v2/ciliumbgpadvertisements/dp-{dp}-lb"

    def ours() -> dict[str, object] | None:
        main(["status", "--kubeconfig", kubeconfig, "-o", "json"])
        report = json.loads(capsys.readouterr().out)
        found = [e for e in report["dynamicPrefixes"] if e["name"] == dp]
        return found[0] if found and found[0]["ready"] == "True" else None

    try:
        entry = wait_for(ours, what="the DynamicPrefix ready, its advertisement in place")
        assert entry["bgp"] == [
            {"kind": "CiliumBGPAdvertisement", "namespace": "", "name": f"dp-{dp}-lb",
             "inSync": True, "problem": ""}
        ]  # fmt: skip

        # with the operator stopped, a deleted advertisement shows as missing
        operator.stop()
        cluster.delete(advert)
        assert main(["status", "--kubeconfig", kubeconfig]) == 1
        out = capsys.readouterr().out
        assert "BGP KIND" in out
        assert f"CiliumBGPAdvertisement   -           dp-{dp}-lb   NO        missing" in out
    finally:
        cluster.delete(f"/apis/dynamic-prefix.io/v1alpha1/dynamicprefixes/{dp}")
        cluster.delete(CILIUM_LB_POOL.path(pool))
