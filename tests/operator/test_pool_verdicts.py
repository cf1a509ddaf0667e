"""Every annotated pool gets a verdict, on the real API server: pools that existed before
the operator started and name a missing or invalid DynamicPrefix, users' entries that
overlap the operator's range, a stale copy of a retired prefix's entry written back, a
classic Calico pool. Each is warned on the pool, counted in PoolsSynced and told by
`dynamic-prefix status`; nothing of the user's is removed. And a Calico rotation never
leaves a moment with nothing allocatable."""

from __future__ import annotations

import json

import pytest

from dynamic_prefix.cli.main import main
from dynamic_prefix.model import api
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CALICO_POOL,
    CILIUM_LB_POOL,
    METALLB_POOL,
    changes_since,
    condition_message,
    create,
    dynamic_prefix,
    events_about,
    new_tag,
    resource_version,
    set_prefix,
    wait_condition_status,
    wait_current,
    wait_event,
    wait_pool,
)


def test_pools_that_existed_before_the_start_get_their_verdict(
    cluster: Cluster, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = new_tag()
    operator.stop()
    backwards = [{"name": "lb", "start": "::ffff:0:0:0", "end": "::f000:0:0:0"}]
    invalid = dynamic_prefix(f"invalid-{tag}", "2001:db8:70::/64", ranges=backwards)
    cluster.apply(invalid)
    names = {f"missing-{tag}": f"nothing-{tag}", f"garbage-{tag}": "Not A_Name!",
             f"invalid-pool-{tag}": f"invalid-{tag}"}  # fmt: skip
    for pool, dp in names.items():
        cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[{"cidr": "192.0.2.0/24"}]))
    operator.start()

    for pool, dp in names.items():
        reason = "InvalidReference" if dp.startswith("invalid") else "DynamicPrefixNotFound"
        event = wait_event(cluster, pool, reason)
        assert event["type"] == "Warning"
        assert dp in event["message"]
    assert all(
        CILIUM_LB_POOL.observe(cluster, pool) == [{"cidr": "192.0.2.0/24"}] for pool in names
    ), "left alone"

    main(["status", "--kubeconfig", str(cluster.plane.kubeconfig), "-o", "json"])
    report = json.loads(capsys.readouterr().out)
    orphans = {o["name"]: o["problem"] for o in report["orphanPools"]}
    assert orphans[f"missing-{tag}"] == f"DynamicPrefix nothing-{tag} does not exist"
    (entry,) = [e for e in report["dynamicPrefixes"] if e["name"] == f"invalid-{tag}"]
    assert [p["inSync"] for p in entry["pools"]] == [False]
    for pool in names:
        cluster.delete(CILIUM_LB_POOL.path(pool))


def test_a_users_entry_overlapping_the_range_is_kept_warned_and_counted(
    cluster: Cluster, operator: OperatorProcess, namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    tag = new_tag()
    dp, pool = f"overlap-{tag}", f"overlap-pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:71::/64"))
    inside = "2001:db8:71:0:f000::/72"  # inside the reserved ::f000:0:0:0/68
    create(cluster, METALLB_POOL.collection(namespace),
           METALLB_POOL.manifest(pool, dp=dp, namespace=namespace, entries=[inside]))  # fmt: skip

    event = wait_event(cluster, pool, "OverlappingEntries", namespace=namespace)
    assert inside in event["message"]
    wait_condition_status(cluster, dp, "PoolsSynced", "False")
    assert inside in (condition_message(cluster, dp, "PoolsSynced") or "")
    assert inside in json.dumps(METALLB_POOL.observe(cluster, pool, namespace)), "kept"
    main(["status", "--kubeconfig", str(cluster.plane.kubeconfig), "-o", "json"])
    (entry,) = [e for e in json.loads(capsys.readouterr().out)["dynamicPrefixes"]
                if e["name"] == dp]  # fmt: skip
    assert [p["inSync"] for p in entry["pools"]] == [False]
    assert "overlaps" in entry["pools"][0]["problem"]

    # the user moves it out of the range: in sync again
    cluster.patch(METALLB_POOL.path(pool, namespace), {"spec": {"addresses": [
        "2001:db8:71:0:e000::/72",
        "2001:db8:71:0:f000::-2001:db8:71:0:ffff:ffff:ffff:ffff"]}})  # fmt: skip
    wait_condition_status(cluster, dp, "PoolsSynced", "True")


def test_a_stale_copy_of_a_retired_range_is_not_taken_for_the_users(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"stale-{tag}", f"stale-pool-{tag}"
    first, second, third = "2001:db8:72::/64", "2001:db8:73::/64", "2001:db8:74::/64"
    cluster.apply(dynamic_prefix(dp, first, history=1))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))
    set_prefix(cluster, dp, second)
    set_prefix(cluster, dp, third)
    wait_current(cluster, dp, third)
    stale = {"start": "2001:db8:72:0:f000::", "stop": "2001:db8:72:0:ffff:ffff:ffff:ffff"}
    wait_for(lambda: stale not in CILIUM_LB_POOL.observe(cluster, pool) or None,
             what="the first prefix retired from the pool")  # fmt: skip
    wait_condition_status(cluster, dp, "PoolsSynced", "True")

    # an editor's stale copy writes the first prefix's block back, without the record
    blocks = CILIUM_LB_POOL.observe(cluster, pool)
    cluster.patch(CILIUM_LB_POOL.path(pool), {"spec": {"blocks": [stale, *blocks]}})

    event = wait_event(cluster, pool, "StaleEntries")
    assert "left the history" in event["message"]
    wait_condition_status(cluster, dp, "PoolsSynced", "False")
    assert stale in CILIUM_LB_POOL.observe(cluster, pool), "kept: it might be the user's"
    cluster.patch(CILIUM_LB_POOL.path(pool), {"spec": {"blocks": blocks}})
    wait_condition_status(cluster, dp, "PoolsSynced", "True")
    assert events_about(cluster, pool, reason="StaleEntries")


def test_a_classic_calico_pool_annotated_is_warned_and_never_written(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"classic-{tag}", f"classic-pool-{tag}"
    path = f"/apis/crd.projectcalico.org/v1/ippools/{pool}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:75::/64"))
    cluster.apply({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": pool, "annotations": {"dynamic-prefix.io/name": dp,
                                                   "dynamic-prefix.io/address-range": "lb"}},
        "spec": {"cidr": "fd00:0:0:fffe::/64", "blockSize": 122},
    })  # fmt: skip
    before = (cluster.get(path) or {})["metadata"]["resourceVersion"]

    event = wait_event(cluster, pool, "UnsupportedPool")
    assert "projectcalico.org/v3" in event["message"]
    wait_condition_status(cluster, dp, "PoolsSynced", "False")
    assert "crd.projectcalico.org/v1" in (condition_message(cluster, dp, "PoolsSynced") or "")
    assert (cluster.get(path) or {})["metadata"]["resourceVersion"] == before, "never written"
    cluster.delete(path)
    wait_condition_status(cluster, dp, "PoolsSynced", "True")


def test_on_a_rotation_the_new_calico_pool_is_enabled_before_the_old_one_is_disabled(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, template = f"order-{tag}", f"order-pool-{tag}"
    first, second = "2001:db8:78::/64", "2001:db8:79::/64"
    cluster.apply(dynamic_prefix(dp, first))
    cluster.apply(CALICO_POOL.manifest(template, dp=dp))
    wait_pool(cluster, CALICO_POOL, template, CALICO_POOL.expected([first]), what="filled")
    since = resource_version(cluster, CALICO_POOL.collection())

    set_prefix(cluster, dp, second)
    wait_pool(cluster, CALICO_POOL, template, CALICO_POOL.expected([second, first]),
              what="rotated")  # fmt: skip

    new, old = CALICO_POOL.generated_name(template, second), CALICO_POOL.generated_name(
        template, first)  # fmt: skip
    seen = [
        (o["metadata"]["name"], bool((o.get("spec") or {}).get("disabled")))
        for _, o in changes_since(cluster, CALICO_POOL.collection(), since,
                                  labels=f"{api.LABEL_GENERATED_FROM}={template}")
    ]  # fmt: skip
    assert (new, False) in seen, seen
    assert (old, True) in seen, seen
    assert seen.index((new, False)) < seen.index((old, True)), "enabled before disabled"
