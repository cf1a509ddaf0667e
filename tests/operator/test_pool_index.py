"""The pool index and the outcome record: pure bookkeeping, checked without a cluster."""

from __future__ import annotations

from typing import Any

from dynamic_prefix.backends.cilium import LB_IP_POOL
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.operator.outcomes import PoolOutcomes
from dynamic_prefix.operator.pool_index import Pool, PoolIndex, PoolKey

POOLS = Resource("cilium.io", "v2", LB_IP_POOL.plural, namespaced=False, kind=LB_IP_POOL.kind)


def pool(name: str, dp: str | None, version: str = "10") -> Pool:
    annotations = (
        {} if dp is None else {api.ANNOTATION_NAME: dp, api.ANNOTATION_ADDRESS_RANGE: "lb"}
    )
    body: dict[str, Any] = {
        "metadata": {"name": name, "annotations": annotations, "resourceVersion": version},
        "spec": {"blocks": []},
    }
    return Pool(LB_IP_POOL, POOLS, body)


def key(name: str) -> PoolKey:
    return PoolKey(LB_IP_POOL.name, "", name)


class TestPoolIndex:
    def test_a_pool_is_found_by_the_dynamic_prefix_it_references(self) -> None:
        index = PoolIndex()

        assert index.put(key("a"), pool("a", "home")) is None
        assert index.put(key("b"), pool("b", None)) is None

        assert index.keys_of("home") == [key("a")]
        assert index.count_of("home") == 1
        assert index.unreferenced() == [key("b")]

    def test_moving_or_deleting_a_pool_names_the_dynamic_prefix_it_left(self) -> None:
        index = PoolIndex()
        index.put(key("a"), pool("a", "home"))

        assert index.put(key("a"), pool("a", "home", "11")) is None  # same reference
        assert index.put(key("a"), pool("a", "office", "12")) == "home"
        assert index.keys_of("home") == []
        assert index.put(key("a"), pool("a", None, "13")) == "office"
        index.put(key("a"), pool("a", "home", "14"))
        assert index.remove(key("a")) == "home"
        assert index.get(key("a")) is None
        assert index.remove(key("a")) is None

    def test_the_echo_of_a_held_version_or_an_older_one_is_held(self) -> None:
        index = PoolIndex()
        index.put(key("a"), pool("a", "home", "20"))

        assert index.holds(LB_IP_POOL, pool("a", "home", "20").body)
        assert index.holds(LB_IP_POOL, pool("a", "home", "19").body)
        assert not index.holds(LB_IP_POOL, pool("a", "home", "21").body)
        assert not index.holds(LB_IP_POOL, pool("b", "home", "20").body)

    def test_a_late_event_of_a_generated_pool_is_not_taken(self) -> None:
        index = PoolIndex()
        template = key("t")
        newer = {"metadata": {"name": "t-1", "resourceVersion": "30"}, "spec": {"cidr": "new"}}
        older = {"metadata": {"name": "t-1", "resourceVersion": "29"}, "spec": {"cidr": "old"}}

        assert index.note_generated(template, "ADDED", newer)
        assert not index.note_generated(template, "MODIFIED", older)
        assert not index.note_generated(template, "MODIFIED", newer)
        assert index.generated_of(template)["t-1"]["spec"]["cidr"] == "new"
        assert index.note_generated(template, "DELETED", newer)
        assert index.generated_of(template) == {}


class TestPoolOutcomes:
    def test_no_summary_until_every_pool_was_judged(self) -> None:
        outcomes = PoolOutcomes()
        outcomes.record("home", key("a"), None)

        assert outcomes.summary("home", total=2) is None
        outcomes.record("home", key("b"), "refused: bad entry")
        summary = outcomes.summary("home", total=2)

        assert summary is not None
        assert (summary.total, summary.in_sync) == (2, 1)
        assert summary.failing == (f"{LB_IP_POOL.name}/b: refused: bad entry",)

    def test_recording_says_whether_the_outcome_changed(self) -> None:
        outcomes = PoolOutcomes()

        assert outcomes.record("home", key("a"), None)
        assert not outcomes.record("home", key("a"), None)
        assert outcomes.record("home", key("a"), "failed")
        assert not outcomes.record("home", key("a"), "failed")

    def test_at_most_five_failing_pools_are_named_in_name_order(self) -> None:
        outcomes = PoolOutcomes()
        for name in "gfedcba":
            outcomes.record("home", key(name), "x")

        summary = outcomes.summary("home", total=7)

        assert summary is not None
        assert summary.in_sync == 0
        assert [entry.split(":")[0] for entry in summary.failing] == [
            f"{LB_IP_POOL.name}/{n}" for n in "abcde"
        ]

    def test_a_released_pool_counts_for_no_dynamic_prefix(self) -> None:
        outcomes = PoolOutcomes()
        outcomes.record("home", key("a"), None)
        outcomes.record("office", key("a"), None)

        outcomes.forget_pool(key("a"))

        assert dict(outcomes.items()) == {"home": {}, "office": {}}
