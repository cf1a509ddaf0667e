"""Two operators, one Lease: one writes, the other takes over when the leader dies or stalls.

Short lease timings (6 s lease, 4 s renew deadline, 1 s retry) keep the test quick; the
writes of each replica are told apart in the API server's audit log by their User-Agent,
which names the replica.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    audit_time,
    blocks,
    dynamic_prefix,
    lb_block,
    lease_holder,
    patch_prefix,
    replica,
)


def writes_by(cluster: Cluster, identity: str) -> list[dict[str, Any]]:
    """Writes a replica made, its Lease renewals left out."""
    return [
        w for w in cluster.plane.audit_writes(user_agent_prefix=f"dynamic-prefix/{identity}")
        if (w.get("objectRef") or {}).get("resource") != "leases"
    ]  # fmt: skip


@dataclass(frozen=True)
class Replicas:
    """Two operators on one Lease, the first leading, and the DynamicPrefix (2001:db8:1e::/64,
    maxPrefixHistory 1) and pool they work on, filled by the first."""

    lease: str
    first: OperatorProcess
    first_id: str
    second: OperatorProcess
    second_id: str
    dp: str
    pool: str


@pytest.fixture
def replicas(cluster: Cluster, control_plane: ControlPlane, tmp_path: Path) -> Iterator[Replicas]:
    """The replicas, both stopped after the test; their logs shown on failure."""
    tag = secrets.token_hex(3)
    lease, first_id, second_id = f"le-{tag}", f"first-{tag}", f"second-{tag}"
    first = replica(control_plane, tmp_path, lease, first_id)
    try:
        wait_for(lambda: lease_holder(cluster, lease) == first_id, what="first replica leads")
        second = replica(control_plane, tmp_path, lease, second_id)
        try:
            dp, pool = f"le-{tag}", f"le-pool-{tag}"
            cluster.apply(dynamic_prefix(dp, "2001:db8:1e::/64", history=1))
            cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))
            wait_for(lambda: blocks(cluster, pool) == [lb_block("2001:db8:1e:0")], what="filled")
            yield Replicas(lease, first, first_id, second, second_id, dp, pool)
        finally:
            second.stop()
            print("---- second ----\n" + second.log()[-5000:])
    finally:
        first.stop()
        print("---- first ----\n" + first.log()[-5000:])


def test_only_the_leader_writes_and_a_standby_takes_over_when_it_is_killed(
    cluster: Cluster, replicas: Replicas
) -> None:
    lease, dp, pool = replicas.lease, replicas.dp, replicas.pool
    assert writes_by(cluster, replicas.first_id)
    assert writes_by(cluster, replicas.second_id) == []
    assert lease_holder(cluster, lease) == replicas.first_id

    killed_at = time.monotonic()
    replicas.first.stop(signal.SIGKILL)  # no chance to give the Lease up
    wait_for(
        lambda: lease_holder(cluster, lease) == replicas.second_id, timeout=20, what="takeover"
    )
    print(f"takeover after SIGKILL: {time.monotonic() - killed_at:.1f} s")
    patch_prefix(cluster, dp, "2001:db8:1f::/64")
    wait_for(
        lambda: blocks(cluster, pool) == [lb_block("2001:db8:1f:0"), lb_block("2001:db8:1e:0")],
        timeout=20,
        what="the new leader follows the change",
    )
    assert writes_by(cluster, replicas.second_id)


def test_a_stalled_leader_writes_nothing_after_a_standby_took_over(
    cluster: Cluster, replicas: Replicas
) -> None:
    lease, dp, pool, first = replicas.lease, replicas.dp, replicas.pool, replicas.first
    assert first.process is not None
    first.process.send_signal(signal.SIGSTOP)  # cut off from the API server, mid-lead
    # A request already on its way when the process stopped may be completed (and
    # audited) long after; only requests the API server received after this moment (plus
    # a second for bytes already in the socket) can be writes made after waking up.
    stopped_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    try:
        wait_for(
            lambda: lease_holder(cluster, lease) == replicas.second_id,
            timeout=20,
            what="the standby takes the Lease of the stalled leader",
        )
        patch_prefix(cluster, dp, "2001:db8:20::/64")
        wait_for(
            lambda: blocks(cluster, pool) == [lb_block("2001:db8:20:0"), lb_block("2001:db8:1e:0")],
            timeout=20,
            what="the new leader follows the change",
        )
    finally:
        first.process.send_signal(signal.SIGCONT)
    # The old leader wakes up with events and timers queued; it must see that
    # its Lease is lost before it writes anything.
    patch_prefix(cluster, dp, "2001:db8:21::/64")
    wait_for(
        lambda: blocks(cluster, pool) == [lb_block("2001:db8:21:0"), lb_block("2001:db8:20:0")],
        timeout=20,
        what="the change after the old leader woke up",
    )
    # it has seen the change (its watch is up again) and stepped down: whatever it had
    # queued has run by now
    wait_for(
        lambda: "no longer leading" in first.log(),
        timeout=30,
        what="the woken replica stepping down",
    )
    late = [
        w for w in writes_by(cluster, replicas.first_id)
        if audit_time(w["requestReceivedTimestamp"]) > stopped_at
    ]  # fmt: skip
    assert late == [], json.dumps(late, indent=1)[:2000]
    assert lease_holder(cluster, lease) == replicas.second_id


def test_a_leader_stopped_amid_a_change_exits_and_gives_the_lease_up(
    cluster: Cluster, replicas: Replicas
) -> None:
    """SIGTERM while a change's writes, events and watches are in flight: the leader
    exits by itself (not killed at the end of its grace period) and releases the Lease,
    so the standby leads without waiting for it to expire. A cancellation swallowed by
    Python 3.11's ``wait_for`` used to keep the process up until it was killed."""
    first = replicas.first
    assert first.process is not None
    patch_prefix(cluster, replicas.dp, "2001:db8:22::/64")
    wait_for(
        lambda: lb_block("2001:db8:22:0") in blocks(cluster, replicas.pool),
        what="the change under way",
    )
    first.stop()  # SIGTERM; killed only after 15 s
    assert first.process.returncode == 0, first.log()[-3000:]
    assert f"lease {replicas.lease} released" in first.log()
    wait_for(
        lambda: lease_holder(cluster, replicas.lease) == replicas.second_id,
        what="the standby leads",
    )
