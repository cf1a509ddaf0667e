"""What the operator's integration tests share: manifests, the pool kinds as users write them,
questions asked of the API server (conditions, events, audited writes, past versions), waits,
and operator processes (one, or replicas sharing a Lease).

Expected pool contents are computed here with `ipaddress`, independently of the operator's
own address code, so a test fails if the operator renders a range wrongly.
"""

from __future__ import annotations

import abc
import asyncio
import copy
import dataclasses
import datetime as dt
import ipaddress
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for

DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
RANGE = "lb"
RANGE_START = "::f000:0:0:0"
RANGE_END = "::ffff:ffff:ffff:ffff"
LB_RANGE = {"name": RANGE, "start": RANGE_START, "end": RANGE_END}
SUBNET = "services"
SERVICES_SUBNET = {"name": SUBNET, "offset": 1, "prefixLength": 64}
COMPONENT = "dynamic-prefix-operator"
# The operator reacts to events within a second; this only bounds how long a failure takes.
WAIT_SECONDS = 10.0


def new_tag() -> str:
    """A random suffix: every test's objects are its own on the shared control plane."""
    return secrets.token_hex(3)


# --- DynamicPrefix ---------------------------------------------------------------------


def dynamic_prefix(
    name: str,
    prefix: str | None = None,
    *,
    history: int | None = 2,
    ranges: Sequence[Mapping[str, str]] = (LB_RANGE,),
    subnets: Sequence[Mapping[str, Any]] = (),
    acquisition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A DynamicPrefix with the static ``prefix`` (or ``acquisition``), the address range
    ``lb`` (::f000:0:0:0/68) or ``ranges``, and ``subnets``.

    Empty ``ranges`` and ``subnets`` are left out, and so is the transition if ``history``
    is None (the operator's default then).
    """
    if acquisition is None:
        assert prefix is not None, "a static prefix, or an acquisition"
        acquisition = {"static": {"prefix": prefix}}
    spec: dict[str, Any] = {"acquisition": acquisition}
    if ranges:
        spec["addressRanges"] = [dict(item) for item in ranges]
    if subnets:
        spec["subnets"] = [dict(item) for item in subnets]
    if history is not None:
        spec["transition"] = {"maxPrefixHistory": history}
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def create(cluster: Cluster, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
    """POST one object (faster than kubectl); the created object."""
    response = cluster.plane.request("POST", collection, body=obj)
    assert response.status == 201, response.body
    created: dict[str, Any] = response.json()
    return created


def create_dynamic_prefix(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    return create(cluster, DP_PATH, obj)


def set_prefix(cluster: Cluster, dp: str, prefix: str) -> None:
    """Rotate: what a new prefix from the ISP looks like with the static source.

    First waits until the operator has taken the prefix in the spec now as current, as
    every prefix of an ISP is in use for a while: without that, a quick test could skip a
    prefix, and it would never enter the history.
    """
    obj = cluster.get(f"{DP_PATH}/{dp}")
    assert obj is not None, f"DynamicPrefix {dp} does not exist"
    wait_current(cluster, dp, obj["spec"]["acquisition"]["static"]["prefix"])
    patch_prefix(cluster, dp, prefix)


def patch_prefix(cluster: Cluster, dp: str, prefix: str) -> None:
    """Give ``dp`` the static ``prefix`` now, without waiting for anything first."""
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"acquisition": {"static": {"prefix": prefix}}}})


def status_of(cluster: Cluster, dp: str) -> dict[str, Any]:
    obj = cluster.get(f"{DP_PATH}/{dp}") or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def current_status(cluster: Cluster, dp: str) -> dict[str, Any] | None:
    """The status of ``dp`` once it has a current prefix; None before."""
    status = status_of(cluster, dp)
    return status if status.get("currentPrefix") else None


def apply_delegation(
    cluster: Cluster, name: str, interface: str, *, entries: Sequence[Any] = ()
) -> dict[str, Any]:
    """DynamicPrefix ``name`` asking for a /56 by DHCPv6-PD on ``interface``, and Cilium LB
    pool ``{name}-pool`` holding ``entries`` and its subnet ``services`` (the second /64 of
    the delegation), applied; the status once it holds a delegation."""
    acquisition = {"dhcpv6pd": {"interface": interface, "requestedPrefixLength": 56}}
    cluster.apply(
        dynamic_prefix(
            name, acquisition=acquisition, ranges=(), subnets=[SERVICES_SUBNET], history=None
        )
    )
    cluster.apply(
        CILIUM_LB_POOL.manifest(
            f"{name}-pool", dp=name, address_range=None, subnet=SUBNET, entries=entries
        )
    )
    return wait_for(lambda: current_status(cluster, name), timeout=30, what="a delegation")


def conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The status conditions of a DynamicPrefix object (any version of it)."""
    return list((obj.get("status") or {}).get("conditions") or [])


def condition_of(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """Condition ``kind`` of a DynamicPrefix object; None if it has none."""
    return next((item for item in conditions(obj) if item.get("type") == kind), None)


def condition(cluster: Cluster, dp: str, kind: str) -> dict[str, Any] | None:
    return condition_of(cluster.get(f"{DP_PATH}/{dp}") or {}, kind)


def condition_status(cluster: Cluster, dp: str, kind: str) -> str | None:
    found = condition(cluster, dp, kind)
    return None if found is None else str(found.get("status"))


def condition_message(cluster: Cluster, dp: str, kind: str) -> str | None:
    found = condition(cluster, dp, kind)
    return None if found is None else str(found.get("message"))


def wait_current(cluster: Cluster, dp: str, prefix: str) -> dict[str, Any]:
    """Wait until the operator has written ``prefix`` as status.currentPrefix.

    The operator writes the canonical text (``2001:db8:259::/64``), so ``prefix`` is
    compared in that form: a tag such as ``0259`` makes a non-canonical literal.
    """
    canonical = str(ipaddress.ip_network(prefix))

    def written() -> dict[str, Any] | None:
        status = status_of(cluster, dp)
        return status if status.get("currentPrefix") == canonical else None

    return wait_for(written, timeout=WAIT_SECONDS, what=f"{dp} currentPrefix {prefix}")


def wait_condition_message(cluster: Cluster, dp: str, kind: str, message: str) -> None:
    """Wait until condition ``kind`` of ``dp`` says ``message``; a failure shows what it said."""
    seen: list[Any] = [None]

    def says_it() -> bool:
        seen[0] = condition(cluster, dp, kind)
        return seen[0] is not None and seen[0].get("message") == message

    try:
        wait_for(says_it, timeout=WAIT_SECONDS, what=f"{dp} {kind}: {message}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n  the condition: {seen[0]!r}") from None


def wait_ready(cluster: Cluster, dp: str) -> None:
    wait_for(lambda: condition_status(cluster, dp, "Ready") == "True", what=f"{dp} Ready")


def wait_condition_status(cluster: Cluster, dp: str, kind: str, status: str) -> None:
    wait_for(
        lambda: condition_status(cluster, dp, kind) == status,
        timeout=WAIT_SECONDS,
        what=f"{dp} {kind} {status}",
    )


async def eventually(predicate: Callable[[], Any], *, what: str) -> None:
    """Like `wait_for`, but yields to the event loop a controller in this process runs on."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_SECONDS}s waiting for {what}")
        await asyncio.sleep(0.05)


# --- events, writes, history of an object ------------------------------------------------


def events_about(
    cluster: Cluster, name: str, *, namespace: str = "default", reason: str | None = None
) -> list[dict[str, Any]]:
    """The core/v1 Events whose involvedObject is ``name`` (cluster-scoped: in default)."""
    selector = f"involvedObject.name={name}"
    if reason is not None:
        selector += f",reason={reason}"
    path = f"/api/v1/namespaces/{namespace}/events?" + urlencode({"fieldSelector": selector})
    found = cluster.get(path) or {}
    return list(found.get("items") or [])


def wait_event(
    cluster: Cluster, name: str, reason: str, *, namespace: str = "default"
) -> dict[str, Any]:
    events = wait_for(
        lambda: events_about(cluster, name, namespace=namespace, reason=reason),
        timeout=WAIT_SECONDS,
        what=f"a {reason} event about {name}",
    )
    return events[0]


def writes_about(cluster: Cluster, match: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The operator's write requests (audit log) on objects whose name ``match``es.

    Events it posts are not counted: they are messages, not state.
    """
    return [
        w for w in cluster.operator_writes()
        if (ref := w.get("objectRef") or {}).get("resource") != "events"
        and match(str(ref.get("name") or ""))
    ]  # fmt: skip


def audit_time(timestamp: str) -> dt.datetime:
    """A timestamp of the audit log (``requestReceivedTimestamp``, ``stageTimestamp``)."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def writes_to(cluster: Cluster, *names: str) -> list[dict[str, Any]]:
    return writes_about(cluster, lambda name: name in names)


def resource_version(cluster: Cluster, path: str) -> str:
    obj = cluster.get(path)
    assert obj is not None, f"{path} does not exist"
    return str(obj["metadata"]["resourceVersion"])


def changes_since(
    cluster: Cluster, collection: str, since: str, *, name: str | None = None, labels: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    """Every (event type, object) of ``collection`` after resourceVersion ``since``.

    A watch started at an older resourceVersion replays what happened since, so a test
    can look back at every version a pool had, not just the last one.
    """
    params = {"watch": "1", "resourceVersion": since, "timeoutSeconds": "1"}
    if name is not None:
        params["fieldSelector"] = f"metadata.name={name}"
    if labels:
        params["labelSelector"] = labels
    response = cluster.plane.request("GET", f"{collection}?{urlencode(params)}")
    assert response.status == 200, response.body
    changes = []
    for line in response.body.decode().splitlines():
        if line.strip():
            event = json.loads(line)
            assert event["type"] != "ERROR", event
            changes.append((str(event["type"]), event["object"]))
    return changes


# --- what the range ``lb`` is in a prefix, computed independently -------------------------


def lb_start(prefix: str) -> IPv6Address:
    return IPv6Network(prefix).network_address + (0xF000 << 48)


def lb_end(prefix: str) -> IPv6Address:
    return IPv6Network(prefix).network_address + (1 << 64) - 1


def lb_block(head: str) -> dict[str, str]:
    """Range ``lb`` as a Cilium block, spelt out for the /64 whose first four groups are
    ``head`` (``2001:db8:1:0``)."""
    return {"start": f"{head}:f000::", "stop": f"{head}:ffff:ffff:ffff:ffff"}


def lb_cidr(prefix: str) -> str:
    """``lb`` is exactly one /68: the top four bits of the interface identifier set."""
    return str(IPv6Network((lb_start(prefix), 68)))


# --- pool kinds ------------------------------------------------------------------------------


class PoolKind(abc.ABC):
    """One kind of pool as a user writes it, and what it should hold."""

    id: str
    namespaced: bool
    group_version: str
    kind: str

    @abc.abstractmethod
    def collection(self, namespace: str | None = None) -> str: ...

    def path(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection(namespace)}/{name}"

    def manifest(
        self,
        name: str,
        *,
        dp: str | None,
        address_range: str | None = RANGE,
        subnet: str | None = None,
        namespace: str | None = None,
        entries: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """The user's pool: annotated for ``dp`` (None: not annotated) and its
        ``address_range`` or ``subnet``, holding the user's ``entries`` (default: the kind's
        own); the namespace only counts for a namespaced kind."""
        annotations = {}
        if dp is not None:
            annotations[api.ANNOTATION_NAME] = dp
            if address_range is not None:
                annotations[api.ANNOTATION_ADDRESS_RANGE] = address_range
            if subnet is not None:
                annotations[api.ANNOTATION_SUBNET] = subnet
        metadata: dict[str, Any] = {"name": name, "annotations": annotations}
        if self.namespaced:
            metadata["namespace"] = namespace
        return {
            "apiVersion": self.group_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec(entries),
        }

    @abc.abstractmethod
    def spec(self, entries: Sequence[Any] | None) -> dict[str, Any]:
        """The spec of the user's pool, holding ``entries`` (None: the kind's own)."""

    @abc.abstractmethod
    def observe(self, cluster: Cluster, name: str, namespace: str | None = None) -> Any:
        """What the pool holds now, comparable with `expected`."""

    @abc.abstractmethod
    def expected(self, prefixes: Sequence[str]) -> Any:
        """The user's entries plus range ``lb`` of every prefix, newest first."""

    @abc.abstractmethod
    def released(self) -> Any:
        """What is left of the user's pool once the operator let it go."""

    @abc.abstractmethod
    def operator_names(self, name: str) -> Callable[[str], bool]:
        """Which object names the operator writes for pool ``name``."""

    @abc.abstractmethod
    def remove_operator_entries(
        self, cluster: Cluster, name: str, namespace: str | None = None
    ) -> None:
        """What a user does by hand: take the operator's entries out of the pool."""

    @abc.abstractmethod
    def record(self, cluster: Cluster, name: str, namespace: str | None = None) -> str | None:
        """The operator's record annotation on the pool (None if it keeps none)."""


@dataclass(frozen=True)
class ListPoolKind(PoolKind):
    """A pool whose addresses are one list in spec (Cilium LB pool and CIDR group, MetalLB)."""

    id: str
    group_version: str
    kind: str
    plural: str
    field: str
    record_annotation: str
    namespaced: bool
    user_entries: tuple[Any, ...]
    malformed_entry: Any
    render: Callable[[str], list[Any]]

    def collection(self, namespace: str | None = None) -> str:
        where = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"/apis/{self.group_version}{where}/{self.plural}"

    def spec(self, entries: Sequence[Any] | None) -> dict[str, Any]:
        return {self.field: copy.deepcopy(list(self.user_entries if entries is None else entries))}

    def observe(self, cluster: Cluster, name: str, namespace: str | None = None) -> Any:
        obj = cluster.get(self.path(name, namespace))
        return None if obj is None else list((obj.get("spec") or {}).get(self.field) or [])

    def expected(self, prefixes: Sequence[str]) -> Any:
        return [*self.user_entries, *itertools.chain.from_iterable(map(self.render, prefixes))]

    def released(self) -> Any:
        return list(self.user_entries)

    def operator_names(self, name: str) -> Callable[[str], bool]:
        return lambda candidate: candidate == name

    def remove_operator_entries(
        self, cluster: Cluster, name: str, namespace: str | None = None
    ) -> None:
        cluster.patch(self.path(name, namespace), {"spec": {self.field: list(self.user_entries)}})

    def record(self, cluster: Cluster, name: str, namespace: str | None = None) -> str | None:
        obj = cluster.get(self.path(name, namespace)) or {}
        value = ((obj.get("metadata") or {}).get("annotations") or {}).get(self.record_annotation)
        return None if value is None else str(value)


CALICO_TEMPLATE_SPEC: dict[str, Any] = {
    "cidr": "fd00:ca1:c0::/64",
    "blockSize": 122,
    "natOutgoing": False,
    "ipipMode": "Never",
    "vxlanMode": "Never",
    "nodeSelector": "all()",
    "assignmentMode": "Automatic",  # Calico's default, filled in when left out
}


@dataclass(frozen=True)
class CalicoPoolKind(PoolKind):
    """Calico IPPools: the user's annotated pool is a template the operator never edits; it
    makes one pool per CIDR, labelled with the template's name, disabled once historic."""

    id: str = "calico"
    namespaced: bool = False
    group_version: str = "projectcalico.org/v3"
    kind: str = "IPPool"

    def collection(self, namespace: str | None = None) -> str:
        return f"/apis/{self.group_version}/ippools"

    def spec(self, entries: Sequence[Any] | None) -> dict[str, Any]:
        """The template's settings: it holds no entries."""
        return copy.deepcopy(CALICO_TEMPLATE_SPEC)

    def generated_name(self, name: str, prefix: str) -> str:
        """The name of the pool made from template ``name`` for range ``lb`` of ``prefix``."""
        return f"{name}-{lb_cidr(prefix).replace(':', '-').replace('/', '-')}"

    def generated(self, cluster: Cluster, name: str) -> list[dict[str, Any]]:
        """The pools the operator made from template ``name``."""
        selector = urlencode({"labelSelector": f"{api.LABEL_GENERATED_FROM}={name}"})
        found = cluster.get(f"{self.collection()}?{selector}") or {}
        return list(found.get("items") or [])

    def observe(self, cluster: Cluster, name: str, namespace: str | None = None) -> Any:
        template = cluster.get(self.path(name))
        if template is None:
            return None
        generated = [pool.get("spec") for pool in self.generated(cluster, name)]
        return {
            "template": template.get("spec"),
            "generated": sorted(generated, key=lambda spec: str((spec or {}).get("cidr"))),
        }

    def expected(self, prefixes: Sequence[str]) -> Any:
        generated = [
            {**CALICO_TEMPLATE_SPEC, "cidr": lb_cidr(prefix), "disabled": index > 0}
            for index, prefix in enumerate(prefixes)
        ]
        return {
            "template": CALICO_TEMPLATE_SPEC,
            "generated": sorted(generated, key=lambda spec: str(spec["cidr"])),
        }

    def released(self) -> Any:
        return {"template": CALICO_TEMPLATE_SPEC, "generated": []}

    def operator_names(self, name: str) -> Callable[[str], bool]:
        return lambda candidate: candidate == name or candidate.startswith(name + "-")

    def remove_operator_entries(
        self, cluster: Cluster, name: str, namespace: str | None = None
    ) -> None:
        for pool in self.generated(cluster, name):
            cluster.delete(self.path(pool["metadata"]["name"]))

    def record(self, cluster: Cluster, name: str, namespace: str | None = None) -> str | None:
        return None


def _cilium_block(prefix: str) -> list[Any]:
    return [{"start": str(lb_start(prefix)), "stop": str(lb_end(prefix))}]


def _metallb_address(prefix: str) -> list[Any]:
    return [f"{lb_start(prefix)}-{lb_end(prefix)}"]


def _cidr(prefix: str) -> list[Any]:
    return [lb_cidr(prefix)]


CILIUM_LB_POOL = ListPoolKind(
    id="cilium-lb-pool",
    group_version="cilium.io/v2",
    kind="CiliumLoadBalancerIPPool",
    plural="ciliumloadbalancerippools",
    field="blocks",
    record_annotation=api.ANNOTATION_MANAGED_BLOCKS,
    namespaced=False,
    user_entries=(
        {"cidr": "192.0.2.0/24"},
        {"start": "2001:db8:ffff::1", "stop": "2001:db8:ffff::9"},
    ),
    # format: cidr in Cilium's CRD refuses a bad cidr; a bad start/stop gets through
    malformed_entry={"start": "2001:db8::zz"},
    render=_cilium_block,
)
CILIUM_CIDR_GROUP = ListPoolKind(
    id="cilium-cidr-group",
    group_version="cilium.io/v2",
    kind="CiliumCIDRGroup",
    plural="ciliumcidrgroups",
    field="externalCIDRs",
    record_annotation=api.ANNOTATION_MANAGED_CIDRS,
    namespaced=False,
    user_entries=("198.51.100.0/24", "2001:db8:ffff:1::/64"),
    # externalCIDRs are format: cidr, checked by Go's net.ParseCIDR, which takes a 5-digit
    # group that the operator's parser (Python's ipaddress) refuses
    malformed_entry="2001:0db8:00000::/64",
    render=_cidr,
)
METALLB_POOL = ListPoolKind(
    id="metallb-pool",
    group_version="metallb.io/v1beta1",
    kind="IPAddressPool",
    plural="ipaddresspools",
    field="addresses",
    record_annotation=api.ANNOTATION_MANAGED_ADDRESSES,
    namespaced=True,
    user_entries=("203.0.113.10-203.0.113.20", "2001:db8:ffff:2::/120"),
    malformed_entry="banana",
    render=_metallb_address,
)
CALICO_POOL = CalicoPoolKind()

LIST_KINDS: tuple[ListPoolKind, ...] = (CILIUM_LB_POOL, CILIUM_CIDR_GROUP, METALLB_POOL)
ALL_KINDS: tuple[PoolKind, ...] = (*LIST_KINDS, CALICO_POOL)


def wait_pool(
    cluster: Cluster,
    kind: PoolKind,
    name: str,
    want: Any,
    *,
    namespace: str | None = None,
    what: str = "",
    timeout: float = WAIT_SECONDS,
) -> None:
    """Wait until the pool holds ``want``; the failure shows what it held instead."""
    seen: list[Any] = [None]

    def holds_want() -> bool:
        seen[0] = kind.observe(cluster, name, namespace)
        return bool(seen[0] == want)

    try:
        wait_for(holds_want, timeout=timeout, what=f"{kind.id} {name}: {what or 'content'}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n  holds: {seen[0]!r}\n  want:  {want!r}") from None


def blocks(cluster: Cluster, name: str) -> list[Any]:
    """The blocks of Cilium LB pool ``name`` (none if it does not exist)."""
    held: list[Any] = CILIUM_LB_POOL.observe(cluster, name) or []
    return held


Pools = list[tuple[PoolKind, str, str | None]]
"""Pools by kind, name and namespace (None for a cluster-scoped kind)."""


def create_pools(cluster: Cluster, pools: Pools, dp: str) -> None:
    """Create ``pools``, each annotated for ``dp`` and its range ``lb``."""
    for kind, name, where in pools:
        create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))


def create_pool_of_every_kind(cluster: Cluster, dp: str, namespace: str) -> Pools:
    """One pool of each kind for ``dp``, named after it (MetalLB's in ``namespace``), created."""
    pools = [(kind, f"{dp}-{kind.id}", namespace if kind.namespaced else None)
             for kind in ALL_KINDS]  # fmt: skip
    create_pools(cluster, pools, dp)
    return pools


def create_fed_pools(cluster: Cluster, dp: str, prefix: str, namespace: str) -> Pools:
    """DynamicPrefix ``dp`` with the static ``prefix``, and one pool of each kind for it
    (MetalLB's in ``namespace``), created."""
    create_dynamic_prefix(cluster, dynamic_prefix(dp, prefix))
    return create_pool_of_every_kind(cluster, dp, namespace)


def wait_pools(cluster: Cluster, pools: Pools, prefixes: Sequence[str], what: str = "") -> None:
    """Wait until each of ``pools`` holds what it should for ``prefixes``, newest first."""
    for kind, name, where in pools:
        wait_pool(cluster, kind, name, kind.expected(prefixes), namespace=where, what=what)


def fill_and_rotate(cluster: Cluster, dp: str, pools: Pools, first: str, second: str) -> None:
    """``pools`` for ``dp``, which has the static prefix ``first``, created and filled; then
    ``dp`` rotated to ``second``, which the pools hold too."""
    create_pools(cluster, pools, dp)
    wait_pools(cluster, pools, [first], what="filled")
    set_prefix(cluster, dp, second)
    wait_pools(cluster, pools, [second, first], what="rotated")
    # The pools do not wait for the status write (design.md, Order of writes): a caller
    # reading the status next must not race it.
    wait_current(cluster, dp, second)


K = TypeVar("K", bound=PoolKind)


@dataclass(frozen=True)
class PoolScene(Generic[K]):
    """A test's pools of one kind, in namespace ``where`` if the kind is namespaced, and the
    DynamicPrefixes that feed them; names end in ``tag``."""

    cluster: Cluster
    kind: K
    where: str | None = None
    tag: str = dataclasses.field(default_factory=new_tag)

    def name(self, label: str) -> str:
        return f"{label}-{self.tag}"

    @property
    def event_namespace(self) -> str:
        """Events about cluster-scoped objects go to default, others next to the object."""
        return self.where or "default"

    def create_dynamic_prefix(self, dp: str, prefix: str, *, history: int = 2) -> None:
        """DynamicPrefix ``dp`` with the static ``prefix``, created."""
        create_dynamic_prefix(self.cluster, dynamic_prefix(dp, prefix, history=history))

    def create_pool(
        self,
        name: str,
        *,
        dp: str | None,
        address_range: str | None = RANGE,
        entries: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """Pool ``name`` for ``dp``, created; as the API server stored it."""
        manifest = self.kind.manifest(
            name, dp=dp, address_range=address_range, namespace=self.where, entries=entries
        )
        return create(self.cluster, self.kind.collection(self.where), manifest)

    def set_up(self, label: str, prefix: str, *, history: int = 2) -> tuple[str, str]:
        """DynamicPrefix ``{label}-{tag}`` with ``prefix`` and its pool ``{label}-pool-{tag}``,
        both created; their names."""
        dp, name = self.name(label), self.name(f"{label}-pool")
        self.create_dynamic_prefix(dp, prefix, history=history)
        self.create_pool(name, dp=dp)
        return dp, name

    def set_up_rotated(self, label: str, first: str, second: str) -> tuple[str, str]:
        """`set_up` with ``first``, then rotated to ``second``: the pool holds both."""
        dp, name = self.set_up(label, first)
        set_prefix(self.cluster, dp, second)
        self.wait(name, [second, first])
        return dp, name

    def path(self, name: str) -> str:
        return self.kind.path(name, self.where)

    def observe(self, name: str) -> Any:
        return self.kind.observe(self.cluster, name, self.where)

    def record(self, name: str) -> str | None:
        return self.kind.record(self.cluster, name, self.where)

    def wait(self, name: str, prefixes: Sequence[str], *, what: str = "") -> None:
        """Wait until pool ``name`` holds what it should for ``prefixes``, newest first."""
        self.wait_content(name, self.kind.expected(prefixes), what=what)

    def wait_content(self, name: str, want: Any, *, what: str = "") -> None:
        wait_pool(self.cluster, self.kind, name, want, namespace=self.where, what=what)


# --- operator processes ----------------------------------------------------------------------


@contextmanager
def running(process: OperatorProcess) -> Iterator[OperatorProcess]:
    """``process`` started; stopped (by PID) at the end, its log printed (shown on failure)."""
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print("---- operator log ----\n" + process.log()[-20000:])


# Short lease timings (6 s lease, 4 s renew deadline, 1 s retry) keep hand-overs quick.
LEASE_TIMINGS = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")


def replica(plane: ControlPlane, tmp_path: Path, lease: str, identity: str) -> OperatorProcess:
    """One of several operators sharing Lease ``lease`` (in default), started; its log is
    ``{identity}.log`` in ``tmp_path``."""
    process = OperatorProcess(plane, tmp_path / f"{identity}.log")
    process.lease_name = lease
    process.extra_args = ("--identity", identity, "--lease-namespace", "default", *LEASE_TIMINGS)
    return process.start()


def lease_holder(cluster: Cluster, lease: str) -> str | None:
    """The identity holding Lease ``lease`` in default (None: nobody)."""
    obj = cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{lease}") or {}
    value = (obj.get("spec") or {}).get("holderIdentity")
    return None if value is None else str(value)
