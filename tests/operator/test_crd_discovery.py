"""Pool kinds the operator finds by itself: CRDs installed after it started, and Cilium
clusters that serve only cilium.io/v2alpha1.

These run on a control plane of their own, holding only the DynamicPrefix CRD at first:
on the session's control plane every pool CRD is installed before any operator starts,
and only one version of the Cilium CRDs can be installed at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import testbed
from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CALICO_POOL,
    CILIUM_CIDR_GROUP,
    CILIUM_LB_POOL,
    METALLB_POOL,
    PoolKind,
    Pools,
    create_dynamic_prefix,
    dynamic_prefix,
    fill_and_rotate,
    new_tag,
    wait_ready,
)

CRDS = Path(testbed.__file__).parent / "crds"
DYNAMIC_PREFIX_CRD = Path(__file__).parents[2] / "deploy" / "crd" / "dynamicprefixes.yaml"
LATE_CRDS = ("metallb.yaml", "calico.yaml", "cilium-v2alpha1.yaml")
A, B = "2001:db8:a1::/64", "2001:db8:b2::/64"

V2ALPHA1_LB_POOL = dataclasses.replace(
    CILIUM_LB_POOL, id="cilium-lb-pool-v2alpha1", group_version="cilium.io/v2alpha1"
)
V2ALPHA1_CIDR_GROUP = dataclasses.replace(
    CILIUM_CIDR_GROUP, id="cilium-cidr-group-v2alpha1", group_version="cilium.io/v2alpha1"
)


@pytest.fixture(scope="module")
def bare_plane() -> Iterator[ControlPlane]:
    """A control plane of this module's own, with the DynamicPrefix CRD and no pool CRD."""
    with ControlPlane() as plane:
        plane.kubectl("apply", "-f", str(DYNAMIC_PREFIX_CRD))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{api.CRD_NAME}")
        yield plane


@pytest.fixture
def bare_operator(bare_plane: ControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator on `bare_plane`, not yet started (a test decides when); stopped after."""
    process = OperatorProcess(bare_plane, tmp_path / "operator.log")
    try:
        yield process
    finally:
        process.stop()
        print("---- operator log ----\n" + process.log()[-20000:])


def _install(plane: ControlPlane, *manifests: str) -> None:
    for manifest in manifests:
        plane.kubectl("apply", "-f", str(CRDS / manifest))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")


def test_pool_kinds_whose_crds_are_installed_after_the_operator_started_are_served_at_once(
    bare_plane: ControlPlane, bare_operator: OperatorProcess
) -> None:
    cluster = Cluster(bare_plane)
    for manifest in LATE_CRDS:  # whatever ran before on this control plane
        bare_plane.kubectl("delete", "--ignore-not-found", "--wait", "-f", str(CRDS / manifest))
    tag = new_tag()
    dp, namespace = f"late-{tag}", f"late-{tag}"
    bare_operator.start()
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    wait_ready(cluster, dp)  # the operator runs, with no pool kind to watch yet

    _install(bare_plane, *LATE_CRDS)
    bare_plane.kubectl("create", "namespace", namespace)
    kinds: list[PoolKind] = [V2ALPHA1_LB_POOL, V2ALPHA1_CIDR_GROUP, METALLB_POOL, CALICO_POOL]
    pools: Pools = [(kind, f"late-{kind.id}-{tag}", namespace if kind.namespaced else None)
                    for kind in kinds]  # fmt: skip
    fill_and_rotate(cluster, dp, pools, A, B)


def test_cilium_pools_served_only_as_v2alpha1_are_filled_and_follow_rotations(
    bare_plane: ControlPlane, bare_operator: OperatorProcess
) -> None:
    cluster = Cluster(bare_plane)
    _install(bare_plane, "cilium-v2alpha1.yaml")
    assert bare_plane.request("GET", "/apis/cilium.io/v2").status == 404
    tag = new_tag()
    dp = f"alpha-{tag}"
    bare_operator.start()
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    pools: Pools = [
        (V2ALPHA1_LB_POOL, f"alpha-pool-{tag}", None),
        (V2ALPHA1_CIDR_GROUP, f"alpha-group-{tag}", None),
    ]
    fill_and_rotate(cluster, dp, pools, A, B)


def test_bgp_kinds_installed_after_the_operator_started_are_announced_to_without_restart(
    bare_plane: ControlPlane, bare_operator: OperatorProcess
) -> None:
    """A Cilium 1.17 cluster (v2alpha1 only) whose BGP CRDs come after the operator."""
    cluster = Cluster(bare_plane)
    for manifest in ("cilium-bgp-v2alpha1.yaml", "cilium-bgp-v2.yaml"):  # earlier tests'
        bare_plane.kubectl("delete", "--ignore-not-found", "--wait", "-f", str(CRDS / manifest))
    _install(bare_plane, "cilium-v2alpha1.yaml")
    tag = new_tag()
    dp = f"late-bgp-{tag}"
    subnet = {"name": "lb", "offset": 1, "prefixLength": 64,
              "bgp": {"advertise": True, "community": "65001:42"}}  # fmt: skip
    bare_operator.start()
    create_dynamic_prefix(cluster, dynamic_prefix(dp, "2001:db8:a100::/56", ranges=(),
                                                  subnets=[subnet]))  # fmt: skip
    pool = V2ALPHA1_LB_POOL.manifest(f"late-bgp-{tag}", dp=dp, address_range=None,
                                     subnet="lb", entries=[])  # fmt: skip
    pool["spec"]["serviceSelector"] = {"matchLabels": {"app": tag}}
    cluster.apply(pool)

    def ready_condition() -> dict[str, str] | None:
        obj = cluster.get(f"/apis/{api.API_VERSION}/{api.PLURAL}/{dp}") or {}
        found = [c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "BGPAdvertisementReady"]  # fmt: skip
        return found[0] if found else None

    wait_for(lambda: "does not serve CiliumBGPAdvertisement" in str(ready_condition()) or None,
             timeout=10, what="the missing speaker CRD said")  # fmt: skip

    _install(bare_plane, "cilium-bgp-v2alpha1.yaml")
    advert = wait_for(
        lambda: cluster.get(f"/apis/cilium.io/v2alpha1/ciliumbgpadvertisements/dp-{dp}-lb"),
        timeout=10, what="the advertisement made once the CRD is served",
    )  # fmt: skip
    assert advert["apiVersion"] == "cilium.io/v2alpha1"
    assert advert["spec"]["advertisements"][0]["selector"] == {"matchLabels": {"app": tag}}
    wait_for(lambda: (ready_condition() or {}).get("status") == "True" or None, timeout=10,
             what=f"BGPAdvertisementReady True: {ready_condition()}")  # fmt: skip
