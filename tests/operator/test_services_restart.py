"""A restart in the middle of a rotation never takes a Service off its current address
(a module of its own: it needs an operator to itself, which it stops and starts)."""

from __future__ import annotations

from testbed.harness import Cluster, OperatorProcess
from tests.operator.operator_testkit import changes_since, patch_prefix, resource_version
from tests.operator.test_services import (
    CILIUM,
    SERVICES,
    SUFFIX,
    address,
    ha_prefix,
    lb_service,
    opted_in,
    tag,
    wait_annotation,
)

__all__ = ["tag"]  # the fixture


def test_a_restart_mid_rotation_never_takes_a_service_off_its_current_address(
    cluster: Cluster, operator: OperatorProcess, tag: str
) -> None:
    dp, name = f"restart-{tag}", f"restart-{tag}"
    first, second = f"2001:db8:{tag[:4]}:1::/64", f"2001:db8:{tag[:4]}:2::/64"
    cluster.apply(ha_prefix(dp, first))
    cluster.apply(lb_service(name, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX})))
    wait_annotation(cluster, name, CILIUM, address(first), "served")
    since = resource_version(cluster, f"{SERVICES}/{name}")

    operator.stop()
    patch_prefix(cluster, dp, second)  # the rotation happens while no operator runs
    operator.start()
    if True:
        wait_annotation(cluster, name, CILIUM, f"{address(second)},{address(first)}",
                        "after the restart")  # fmt: skip
    versions = [
        (o["metadata"].get("annotations") or {}).get(CILIUM, "")
        for _, o in changes_since(cluster, SERVICES, since, name=name)
    ]
    assert versions, "the Service was written after the restart"
    # every version the Service had holds the address it had before (never dropped)
    assert all(address(first) in v.split(",") for v in versions), versions
