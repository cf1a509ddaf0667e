"""The local demo (``scripts/demo.sh``, i.e. ``python -m testbed.demo``): the product on one
machine, with nothing but this checkout.

Starts a real kube-apiserver + etcd on loopback, installs the DynamicPrefix CRD and the
pool kinds of Cilium, MetalLB and Calico, makes a simulated router (radvd in a network
namespace, on a veth whose other end is on this host), applies the user guide's example
listening there and one annotated pool of each kind (with entries a user wrote by hand),
runs the operator, then renumbers the router a few times, showing after each change how
the DynamicPrefix status and every pool followed. Without root (no namespaces) a static
prefix stands in for the router. Everything started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import dynamic_prefix
from dynamic_prefix.cli.crd import crd_manifest_text
from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.netns import Link, namespaces_supported
from testbed.radvd import PrefixAd, Radvd

EXAMPLE = Path(dynamic_prefix.__file__).parent / "examples" / "home-prefix.yaml"
CRDS = Path(__file__).parent / "crds"
PREFIXES = ("2001:db8:abcd:1::/64", "2001:db8:beef:1::/64", "2001:db8:cafe:1::/64",
            "2001:db8:f00d:1::/64")  # fmt: skip
DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
POOL_PATHS = {
    "Cilium LB pool ipv6-lb-pool": "/apis/cilium.io/v2/ciliumloadbalancerippools/ipv6-lb-pool",
    "MetalLB pool demo/ipv6-pool": (
        "/apis/metallb.io/v1beta1/namespaces/demo/ipaddresspools/ipv6-pool"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The demo's arguments."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Start a local kube-apiserver + etcd, install the CRDs, apply the user "
        "guide's example and sample pools of Cilium, MetalLB and Calico, run the operator "
        "and change the prefix a few times, showing the pools following. Needs the "
        "binaries that scripts/setup.sh builds.",
    )
    parser.add_argument("--rotations", type=int, default=3, help="prefix changes to show")
    parser.add_argument(
        "--check", action="store_true", help="non-interactive: exit 1 unless the pools followed"
    )
    parser.add_argument(
        "--static",
        action="store_true",
        help="no simulated router: change a static prefix (the default needs root for "
        "network namespaces)",
    )
    return parser


class _Narrator:
    """Prints steps with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f}s] {text}", flush=True)


def _annotations(**extra: str) -> dict[str, str]:
    return {api.ANNOTATION_NAME: "home-prefix", api.ANNOTATION_ADDRESS_RANGE: "loadbalancers",
            **extra}  # fmt: skip


def sample_pools() -> list[dict[str, Any]]:
    """One annotated pool of each kind, each with an entry a user wrote by hand."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": "ipv6-lb-pool", "annotations": _annotations()},
            "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "ipv6-pool", "namespace": "demo", "annotations": _annotations()},
            "spec": {"addresses": ["198.51.100.10-198.51.100.20"]},
        },
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "IPPool",
            "metadata": {"name": "ipv6-lb", "annotations": _annotations()},
            # The template's own CIDR is a placeholder, kept unused by disabled: true.
            "spec": {"cidr": "fd00:0:0:ffff::/64", "blockSize": 122, "disabled": True},
        },
    ]


SERVICE_PATH = "/api/v1/namespaces/demo/services/web"


def sample_service() -> dict[str, Any]:
    """A LoadBalancer Service that follows the prefix (transition.mode: ha), with an IPv4
    and a DNS name its user wrote; pools of three IPAMs share the range, so it says which
    IPAM gives its address."""
    annotations = {
        api.ANNOTATION_NAME: "home-prefix",
        "dynamic-prefix.io/service-address-range": "loadbalancers",
        "dynamic-prefix.io/suffix": "::ffff:0:0:80",
        "dynamic-prefix.io/lb-provider": "cilium",
        "lbipam.cilium.io/ips": "192.0.2.80",
        "external-dns.alpha.kubernetes.io/target": "web.example.net",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP"}]},
    }


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 0 when the pools followed every change."""
    narrator = _Narrator()
    narrator.say("starting a local control plane (etcd + kube-apiserver)")
    try:
        with ControlPlane() as plane, tempfile.TemporaryDirectory() as scratch:
            return _demo(plane, Cluster(plane), narrator, Path(scratch), args)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130


def _demo(
    plane: ControlPlane,
    cluster: Cluster,
    narrator: _Narrator,
    scratch: Path,
    args: argparse.Namespace,
) -> int:
    narrator.say(f"control plane ready at {plane.server}")
    plane.kubectl("apply", "-f", "-", input=crd_manifest_text())
    for crd in sorted(CRDS.glob("*.yaml")):
        if not crd.name.endswith("-v2alpha1.yaml"):  # the older Cilium, installed instead
            plane.kubectl("apply", "-f", str(crd))
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
    narrator.say("CRDs installed: DynamicPrefix; pool and BGP kinds of Cilium, MetalLB, Calico")

    with contextlib.ExitStack() as stack:
        router = _router(stack, narrator, static=args.static)
        dynamic_prefix: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        dynamic_prefix["spec"]["acquisition"] = router.acquisition()
        dynamic_prefix["spec"]["transition"] = {"mode": "ha"}  # Services move too
        cluster.apply(dynamic_prefix)
        for obj in [*sample_pools(), sample_service()]:
            cluster.apply(obj)
        narrator.say(
            f"applied the user guide's DynamicPrefix ({router.describe()}, transition.mode "
            "ha), three annotated pools, each with an entry written by hand, and a "
            "LoadBalancer Service"
        )
        operator = OperatorProcess(plane, scratch / "operator.log").start()
        narrator.say("operator started")
        followed = True
        try:
            for step, prefix in enumerate(PREFIXES[: args.rotations + 1]):
                if step:
                    router.change(cluster, prefix, previous=PREFIXES[step - 1])
                    narrator.say(f"prefix changed to {prefix} ({router.how()})")
                followed &= _show(cluster, narrator, prefix)
        finally:
            operator.stop()
    narrator.say("operator stopped; stopping the control plane")
    if args.check and not followed:
        print("the pools or the Service did not follow every change; operator log:\n"
              + operator.log(),
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


class _StaticRouter:
    """No router: the prefix is changed in the DynamicPrefix's spec."""

    def acquisition(self) -> dict[str, Any]:
        return {"static": {"prefix": PREFIXES[0]}}

    def describe(self) -> str:
        return "a static prefix stands in for the router"

    def how(self) -> str:
        return "spec.acquisition.static edited"

    def change(self, cluster: Cluster, prefix: str, *, previous: str) -> None:
        cluster.patch(
            f"{DP_PATH}/home-prefix", {"spec": {"acquisition": {"static": {"prefix": prefix}}}}
        )


class _RadvdRouter:
    """radvd in a network namespace, advertising on a veth whose other end is ours."""

    def __init__(self, link: Link, radvd: Radvd) -> None:
        self.link = link
        self.radvd = radvd

    def acquisition(self) -> dict[str, Any]:
        return {
            "routerAdvertisement": {
                "interface": self.link.node_ifname,
                "trustedRouters": [str(self.link.router.link_local)],
            }
        }

    def describe(self) -> str:
        return (
            f"Router Advertisements from radvd in namespace {self.link.router_namespace}, "
            f"heard on {self.link.node_ifname}"
        )

    def how(self) -> str:
        return "radvd renumbered: the new prefix advertised, the old one deprecated"

    def change(self, cluster: Cluster, prefix: str, *, previous: str) -> None:
        # as a router does when its delegation changes (RFC 7084 L-13): the old prefix
        # is still valid for a while but no longer preferred
        deprecated = PrefixAd(previous, valid=1800, preferred=0)
        self.radvd.set_prefixes([_advertised(prefix), deprecated])


def _advertised(prefix: str) -> PrefixAd:
    return PrefixAd(prefix, valid=3600, preferred=1800)


def _router(
    stack: contextlib.ExitStack, narrator: _Narrator, *, static: bool
) -> _StaticRouter | _RadvdRouter:
    """A simulated router if this machine can make network namespaces, else none."""
    supported, reason = (False, "--static given") if static else namespaces_supported()
    if not supported:
        narrator.say(f"no simulated router ({reason}): the prefix is set in the spec instead")
        return _StaticRouter()
    link = stack.enter_context(Link(node_in_root_namespace=True))
    radvd = stack.enter_context(Radvd(link, prefixes=[_advertised(PREFIXES[0])]))
    narrator.say(
        f"simulated router: radvd in network namespace {link.router_namespace} advertises "
        f"{PREFIXES[0]} on a veth whose other end, {link.node_ifname}, is on this host"
    )
    return _RadvdRouter(link, radvd)


def _show(cluster: Cluster, narrator: _Narrator, prefix: str) -> bool:
    head = prefix.split("::/", maxsplit=1)[0]
    try:
        wait_for(
            lambda: (
                all(_has(cluster.get(path), head) for path in POOL_PATHS.values())
                and head in _service_addresses(cluster)
                # the pools are written before the status (design.md, Order of writes)
                and _status(cluster).get("currentPrefix") == prefix
            ),
            timeout=30,
            what=f"pools and the Service holding {prefix}",
        )
    except AssertionError as error:
        narrator.say(str(error))
        return False
    narrator.say(f"every pool holds {prefix}:")
    status = _status(cluster)
    history = ", ".join(h["prefix"] for h in status.get("history") or []) or "(none)"
    print(f"    DynamicPrefix home-prefix: current {status.get('currentPrefix')}, "
          f"history {history}")  # fmt: skip
    for label, path in POOL_PATHS.items():
        spec = (cluster.get(path) or {}).get("spec") or {}
        entries = spec.get("blocks", spec.get("addresses"))
        print(f"    {label}: {json.dumps(entries)}")
    calico = cluster.get("/apis/projectcalico.org/v3/ippools") or {"items": []}
    for pool in calico["items"]:
        if api.LABEL_GENERATED_FROM in (pool["metadata"].get("labels") or {}):
            state = "disabled" if pool["spec"].get("disabled") else "enabled"
            print(f"    Calico pool {pool['metadata']['name']}: {pool['spec']['cidr']} ({state})")
    annotations = (cluster.get(SERVICE_PATH) or {}).get("metadata", {}).get("annotations") or {}
    print(f"    Service demo/web: lbipam.cilium.io/ips {_service_addresses(cluster)}; "
          f"DNS target {annotations.get('external-dns.alpha.kubernetes.io/target')}")  # fmt: skip
    return True


def _status(cluster: Cluster) -> dict[str, Any]:
    return dict((cluster.get(f"{DP_PATH}/home-prefix") or {}).get("status") or {})


def _service_addresses(cluster: Cluster) -> str:
    annotations = (cluster.get(SERVICE_PATH) or {}).get("metadata", {}).get("annotations") or {}
    return str(annotations.get("lbipam.cilium.io/ips", ""))


def _has(pool: dict[str, Any] | None, head: str) -> bool:
    return pool is not None and head in json.dumps(pool.get("spec"))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the demo."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
