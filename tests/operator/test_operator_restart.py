"""An operator restart never empties or rewinds a pool: nothing is written for a DynamicPrefix
until its prefix is learnt again, and then the pools become exactly right.

Each test runs its own operator process, stopped and started again in the middle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.model import api
from testbed.harness import Cluster, OperatorProcess
from tests.operator.operator_testkit import (
    CALICO_POOL,
    DP_PATH,
    ListPoolKind,
    Pools,
    changes_since,
    conditions,
    create_fed_pools,
    new_tag,
    resource_version,
    set_prefix,
    status_of,
    wait_condition_message,
    wait_pools,
    writes_about,
)

A, B, C = (f"2001:db8:{n}::/64" for n in ("a1", "b2", "c3"))


def _pools_of_every_kind(cluster: Cluster, dp: str, prefix: str, namespace: str) -> Pools:
    """One pool of each kind for ``dp`` (MetalLB's in ``namespace``), filled with ``prefix``."""
    pools = create_fed_pools(cluster, dp, prefix, namespace)
    wait_pools(cluster, pools, [prefix])
    wait_condition_message(cluster, dp, "PoolsSynced", f"{len(pools)}/{len(pools)} pools in sync")
    return pools


def _stopped_in_sync(cluster: Cluster, operator: OperatorProcess, dp: str, namespace: str) -> Pools:
    """`_pools_of_every_kind` for ``dp`` filled with A, then the operator stopped."""
    pools = _pools_of_every_kind(cluster, dp, A, namespace)
    operator.stop()
    return pools


def _version(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_pools_are_left_alone_until_the_restarted_operator_relearns_the_prefix_then_exact(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    tag = new_tag()
    dp = f"restart-{tag}"
    pools = _stopped_in_sync(cluster, operator, dp, namespace)
    since = {name: resource_version(cluster, kind.path(name, where)) for kind, name, where in pools}
    dp_since = resource_version(cluster, f"{DP_PATH}/{dp}")
    calico_name = next(name for kind, name, _ in pools if kind is CALICO_POOL)
    generated_since = max(_version(pool) for pool in CALICO_POOL.generated(cluster, calico_name))

    set_prefix(cluster, dp, B)

    # While the operator is down nothing moves, and the status still says A.
    assert status_of(cluster, dp)["currentPrefix"] == A
    for kind, name, where in pools:
        assert kind.observe(cluster, name, where) == kind.expected([A])
        assert resource_version(cluster, kind.path(name, where)) == since[name]

    operator.start()

    wait_pools(cluster, pools, [B, A], what="exact")
    # The pools do not wait for the status write (design.md, "Order of writes"), so a
    # pool may be written just before the status that says B: what tells a write made
    # after relearning from one made before is what it holds. Before relearning, the
    # only prefix the operator could render is the status's A.
    assert any(
        (obj.get("status") or {}).get("currentPrefix") == B
        for _, obj in changes_since(cluster, DP_PATH, dp_since, name=dp)
    ), "the status never said B"
    for kind, name, where in pools:
        changes = changes_since(cluster, kind.collection(where), since[name], name=name)
        if not isinstance(kind, ListPoolKind):
            assert changes == [], f"the Calico template {name} was written"
            continue
        assert changes, f"{name} was never written"
        for _, obj in changes:
            held = obj["spec"][kind.field]
            assert held == kind.expected([B, A]), f"{name} written holding {held}"
    generated = changes_since(
        cluster,
        CALICO_POOL.collection(),
        str(generated_since),
        labels=f"{api.LABEL_GENERATED_FROM}={calico_name}",
    )
    assert generated, "no Calico pool was made for B"
    for change, obj in generated:
        assert change != "DELETED", f"{obj['metadata']['name']} deleted during the restart"
        assert obj["spec"] in CALICO_POOL.expected([B, A])["generated"], obj["spec"]


@dataclass(frozen=True)
class QuietRestart:
    """What a restarted operator did to a DynamicPrefix and pools that were all in sync."""

    dp: str
    pools: Pools
    writes: list[dict[str, Any]]  # audited writes after the restart, on those objects
    versions: list[dict[str, Any]]  # every version of the DynamicPrefix since the stop

    def writes_to(self, names: Sequence[str]) -> list[str]:
        return _summary([w for w in self.writes if (w.get("objectRef") or {}).get("name") in names])


def _restart_with_nothing_changed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> QuietRestart:
    tag = new_tag()
    dp = f"calm-{tag}"
    pools = _stopped_in_sync(cluster, operator, dp, namespace)
    since = resource_version(cluster, f"{DP_PATH}/{dp}")

    def ours(name: str) -> bool:
        return name == dp or any(kind.operator_names(pool)(name) for kind, pool, _ in pools)

    before = writes_about(cluster, ours)

    operator.start()

    # Pools of every kind filled for another DynamicPrefix: the operator has listed them all.
    _pools_of_every_kind(cluster, f"calm-mark-{tag}", C, namespace)
    return QuietRestart(
        dp,
        pools,
        writes_about(cluster, ours)[len(before) :],
        [obj for _, obj in changes_since(cluster, DP_PATH, since, name=dp)],
    )


def test_a_restarted_operator_writes_no_status_and_keeps_ready_when_nothing_changed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    restart = _restart_with_nothing_changed(cluster, operator, namespace)

    assert [_conditions(obj) for obj in restart.versions] == []
    assert restart.writes_to([restart.dp]) == []


def test_a_restarted_operator_writes_no_list_pool_when_nothing_changed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Cilium and MetalLB pools. Calico pools are left out: after a restart a Calico pool
    may be created again (HTTP 409), at random; test_pool_backends shows that bug for sure."""
    restart = _restart_with_nothing_changed(cluster, operator, namespace)

    names = [name for kind, name, _ in restart.pools if isinstance(kind, ListPoolKind)]
    assert restart.writes_to(names) == []


def _conditions(obj: dict[str, Any]) -> list[str]:
    """``type=status (message)`` of each condition of a DynamicPrefix, for messages."""
    return [f"{c.get('type')}={c.get('status')} ({c.get('message')})" for c in conditions(obj)]


def _summary(writes: list[dict[str, Any]]) -> list[str]:
    """``verb resource/name[/subresource] -> HTTP code`` of audited writes, for messages."""
    lines = []
    for write in writes:
        ref = write.get("objectRef") or {}
        where = "/".join(str(ref[k]) for k in ("resource", "name", "subresource") if ref.get(k))
        code = (write.get("responseStatus") or {}).get("code")
        lines.append(f"{write.get('verb')} {where} -> {code}")
    return lines
