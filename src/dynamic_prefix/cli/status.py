"""`dynamic-prefix status`: every DynamicPrefix, what it believes, its pools', Services'
and BGP announcements' state (judged with the operator's own functions).

A pool is "in sync" when the operator would write nothing to it: its desired content is
computed here exactly as the operator computes it (`backends`), read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dynamic_prefix.backends.base import PoolReference, ReferenceProblem, plan_pool
from dynamic_prefix.backends.bgp import (
    BGP_KINDS,
    CALICO_BGP_CONFIGURATION,
    CALICO_CONFIGURATION_NAME,
    FedPool,
    calico_change,
    is_ours,
    object_patch,
    owner_of,
    plan_announcements,
)
from dynamic_prefix.backends.registry import BACKENDS
from dynamic_prefix.backends.service import (
    SERVICES,
    WaitingForAddress,
    plan_service,
    pool_kinds_for,
    service_inputs,
)
from dynamic_prefix.cli.output import FORMATS, render_data, render_table
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import ConfigError, load_config
from dynamic_prefix.kube.errors import ApiError
from dynamic_prefix.model import api
from dynamic_prefix.model.status import READY
from dynamic_prefix.operator.controller import DYNAMIC_PREFIXES
from dynamic_prefix.operator.kinds import served_resource
from dynamic_prefix.operator.pool_index import is_generated
from dynamic_prefix.operator.pool_watch import is_relevant
from dynamic_prefix.operator.service_index import named_prefix
from dynamic_prefix.operator.service_reconciler import named_reference


def add_parser(subparsers: Any) -> None:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show every DynamicPrefix and the pools it manages",
        description="Show every DynamicPrefix (prefix, source, lifetimes, conditions) and "
        "every pool that references it, with whether the pool holds what it should.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    parser.add_argument("-o", "--output", choices=FORMATS, default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when some DynamicPrefix is not Ready or a pool is out of sync."""
    try:
        config = load_config(args.kubeconfig)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(collect(KubeClient(config)))
    except ApiError as error:
        print(f"error: the API server said: {error}", file=sys.stderr)
        return 2
    if args.output == "table":
        sys.stdout.write(format_report(report))
    else:
        sys.stdout.write(render_data(report, args.output))
    healthy = (
        all(
            dp["ready"] == "True"
            and all(p["inSync"] for p in dp["pools"])
            and all(s["inSync"] for s in dp["services"])
            and all(b["inSync"] for b in dp["bgp"])
            for dp in report["dynamicPrefixes"]
        )
        and not report["orphanPools"]
    )
    return 0 if healthy else 1


async def collect(client: KubeClient) -> dict[str, Any]:
    """Every DynamicPrefix with its pools, as plain data."""
    async with client:
        listing = await client.list_objects(DYNAMIC_PREFIXES)
        dynamic_prefixes = {item["metadata"]["name"]: item for item in listing.get("items") or []}
        pools: list[tuple[Any, Resource, dict[str, Any]]] = []
        for backend in BACKENDS:
            resource = await served_resource(client, backend)
            if resource is None:
                continue
            for item in (await client.list_objects(resource)).get("items") or []:
                if is_relevant(backend, item):
                    pools.append((backend, resource, item))
        services = [
            item for item in (await client.list_objects(SERVICES)).get("items") or []
            if named_prefix(item) in dynamic_prefixes
        ]  # fmt: skip
        bgp_served: dict[str, Resource] = {}
        bgp_objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind in BGP_KINDS:
            resource = await served_resource(client, kind)
            if resource is None:
                continue
            bgp_served[kind.name] = resource
            for item in (await client.list_objects(resource)).get("items") or []:
                metadata = item["metadata"]
                key = (kind.name, metadata.get("namespace") or "", metadata["name"])
                bgp_objects[key] = item
    # the Calico pools made from each template, as the operator holds them (`PoolIndex`)
    generated: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for backend, _, pool in pools:
        template = is_generated(pool)
        if template is not None:
            generated.setdefault((backend.name, template), []).append(pool)
    pools = [(b, r, p) for b, r, p in pools if is_generated(p) is None]
    references = [
        (backend.name, PoolReference.from_annotations(pool["metadata"].get("annotations")))
        for backend, _, pool in pools
    ]
    report = []
    for name, obj in sorted(dynamic_prefixes.items()):
        status = obj.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        entry = {
            "name": name,
            "currentPrefix": status.get("currentPrefix"),
            "source": status.get("prefixSource"),
            "preferredUntil": status.get("preferredUntil"),
            "validUntil": status.get("validUntil"),
            "history": [h.get("prefix") for h in status.get("history") or []],
            "ready": conditions.get(READY, {}).get("status", "Unknown"),
            "conditions": {
                k: f"{c.get('status')} {c.get('reason')}: {c.get('message')}"
                for k, c in conditions.items()
            },
            "pools": [],
            "services": [
                _service_state(service, obj, references)
                for service in services
                if named_prefix(service) == name
            ],
            "bgp": _bgp_state(
                obj,
                [f for f in (FedPool.of(b.name, p) for b, _, p in pools) if f is not None],
                bgp_served,
                bgp_objects,
            ),
        }
        for backend, resource, pool in pools:
            reference = PoolReference.from_annotations(pool["metadata"].get("annotations"))
            if reference is None or reference.dynamic_prefix != name:
                continue
            made = generated.get((backend.name, pool["metadata"]["name"]), [])
            entry["pools"].append(_pool_state(backend, resource, pool, reference, obj,
                                                generated=made))  # fmt: skip
        report.append(entry)
    orphans = []
    for backend, _, pool in pools:
        reference = PoolReference.from_annotations(pool["metadata"].get("annotations"))
        if reference is not None and reference.dynamic_prefix not in dynamic_prefixes:
            orphans.append({
                "kind": backend.kind, "namespace": pool["metadata"].get("namespace", ""),
                "name": pool["metadata"]["name"], "inSync": False,
                "problem": f"DynamicPrefix {reference.dynamic_prefix} does not exist",
            })  # fmt: skip
    return {"dynamicPrefixes": report, "orphanPools": orphans}


def _pool_state(
    backend: Any, resource: Resource, pool: dict[str, Any], reference: PoolReference, dp: Any,
    *, generated: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    metadata = pool["metadata"]
    state: dict[str, Any] = {
        "kind": backend.kind,
        "namespace": metadata.get("namespace", ""),
        "name": metadata["name"],
        "reference": reference.address_range or reference.subnet or "(whole prefix)",
    }
    try:
        plan = plan_pool(backend, resource, pool, reference, dp, generated=generated)
    except ReferenceProblem as error:
        return {**state, "inSync": False, "problem": str(error)}
    if plan.conflicts:  # as the operator counts it: out of sync although nothing to write
        return {**state, "inSync": False, "problem": "; ".join(plan.conflicts)}
    problem = "; ".join(plan.problems) or (
        "" if plan.in_sync else "differs from what it should hold"
    )
    return {**state, "inSync": plan.in_sync, "problem": problem}


def _service_state(
    service: dict[str, Any], dp: Any, pools: list[tuple[str, PoolReference | None]]
) -> dict[str, Any]:
    """Judged as the operator judges it (`service_inputs`, `plan_service`)."""
    metadata = service["metadata"]
    state: dict[str, Any] = {"namespace": metadata.get("namespace", ""), "name": metadata["name"]}
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    state["addresses"] = ",".join(str(i.get("ip")) for i in ingress if i.get("ip"))
    try:
        reference, inputs = service_inputs(
            service, dp, pool_kinds=pool_kinds_for(named_reference(service), pools)
        )
        plan = plan_service(service, reference, inputs)
    except (ReferenceProblem, WaitingForAddress) as error:
        return {**state, "inSync": False, "problem": str(error)}
    problem = "; ".join(plan.problems) or (
        "" if plan.in_sync else "differs from what it should carry"
    )
    return {**state, "inSync": plan.in_sync, "problem": problem}


def _bgp_state(
    dp: dict[str, Any],
    pools: list[FedPool],
    served: dict[str, Resource],
    observed: dict[tuple[str, str, str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each announcement the operator would keep, judged as it judges them (`Announcer`)."""
    name = dp["metadata"]["name"]
    plan = plan_announcements(dp, pools, served)
    if plan is None:
        return []
    states: list[dict[str, Any]] = []
    wanted = set()
    for desired in plan.objects:
        key = (desired.kind.name, desired.namespace or "", desired.name)
        wanted.add(key)
        state = {"kind": desired.kind.kind, "namespace": desired.namespace or "",
                 "name": desired.name}  # fmt: skip
        found = observed.get(key)
        if found is None:
            problem = "missing"
        elif not is_ours(found, dp):
            problem = "exists and was not made by the operator"
        else:
            problem = (
                "" if object_patch(found, desired) is None else "differs from what it should be"
            )
        states.append({**state, "inSync": not problem, "problem": problem})
    for key, found in observed.items():
        if key not in wanted and owner_of(found) == name and is_ours(found, dp):
            kind = next(k for k in BGP_KINDS if k.name == key[0])
            states.append({"kind": kind.kind, "namespace": key[1], "name": key[2],
                           "inSync": False,
                           "problem": "no longer wanted, not deleted yet"})  # fmt: skip
    calico = CALICO_BGP_CONFIGURATION.name
    if calico in served:
        config = observed.get((calico, "", CALICO_CONFIGURATION_NAME))
        change = calico_change(config, name, plan.calico_cidrs, plan.calico_retired,
                               communities=dict(plan.calico_communities))  # fmt: skip
        if plan.calico_cidrs or change.patch is not None or change.problem is not None:
            problem = change.problem or (
                "" if change.create is None and change.patch is None
                else "serviceLoadBalancerIPs differs from what it should hold"
            )  # fmt: skip
            states.append({"kind": CALICO_BGP_CONFIGURATION.kind, "namespace": "",
                           "name": CALICO_CONFIGURATION_NAME, "inSync": not problem,
                           "problem": problem})  # fmt: skip
    states += [{"kind": "-", "namespace": "", "name": "-", "inSync": False, "problem": p}
               for p in plan.problems + plan.waiting]  # fmt: skip
    return states


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report."""
    entries = report["dynamicPrefixes"]
    orphans = report.get("orphanPools") or []
    tail = ""
    if orphans:
        rows = [[o["kind"], o["namespace"] or "-", o["name"], o["problem"]] for o in orphans]
        tail = "\npools naming a DynamicPrefix that does not exist:\n" + render_table(
            ["KIND", "NAMESPACE", "NAME", "PROBLEM"], rows)  # fmt: skip
    if not entries:
        return f"no {api.KIND} in the cluster\n" + tail
    rows = [
        [
            e["name"], e["currentPrefix"] or "-", e["source"] or "-", e["preferredUntil"] or "-",
            e["validUntil"] or "-", e["ready"],
            f"{sum(p['inSync'] for p in e['pools'])}/{len(e['pools'])} in sync",
        ]
        for e in entries
    ]  # fmt: skip
    parts = [render_table(["NAME", "PREFIX", "SOURCE", "PREFERRED UNTIL", "VALID UNTIL",
                           "READY", "POOLS"], rows)]  # fmt: skip
    for e in entries:
        if e["history"]:
            parts.append(f"\n{e['name']}: kept from before: {', '.join(e['history'])}\n")
        for kind, text in sorted(e["conditions"].items()):
            parts.append(f"  {kind}: {text}\n")
        if e["pools"]:
            pool_rows = [
                [p["kind"], p["namespace"] or "-", p["name"], p["reference"],
                 "yes" if p["inSync"] else "NO", p.get("problem", "")]
                for p in e["pools"]
            ]  # fmt: skip
            headers = ["KIND", "NAMESPACE", "NAME", "USES", "IN SYNC", "PROBLEM"]
            parts.append("\n" + render_table(headers, pool_rows))
        if e["services"]:
            service_rows = [
                ["Service", s["namespace"], s["name"], s["addresses"] or "-",
                 "yes" if s["inSync"] else "NO", s.get("problem", "")]
                for s in e["services"]
            ]  # fmt: skip
            headers = ["KIND", "NAMESPACE", "NAME", "ADDRESSES", "IN SYNC", "PROBLEM"]
            parts.append("\n" + render_table(headers, service_rows))
        if e["bgp"]:
            bgp_rows = [
                [b["kind"], b["namespace"] or "-", b["name"], "yes" if b["inSync"] else "NO",
                 b.get("problem", "")]
                for b in e["bgp"]
            ]  # fmt: skip
            headers = ["BGP KIND", "NAMESPACE", "NAME", "IN SYNC", "PROBLEM"]
            parts.append("\n" + render_table(headers, bgp_rows))
    return "".join(parts) + tail
