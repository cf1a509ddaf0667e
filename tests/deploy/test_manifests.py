"""The manifests under deploy/: what they say, that the API server takes them, and that their
ServiceAccount may do the operator's whole job (the operator runs its scenario as that
account, RBAC enforced) and nothing more.

The control plane has no controller-manager and no nodes, so the Deployment never gets a
pod: the operator runs here as a process holding a token of the deployed ServiceAccount
(TokenRequest API), which is exactly what RBAC sees of a pod.

Cleanup leaves what deploy/ installs in place (other tests install the same CRD, and a
namespace never finishes terminating without a controller-manager); the DynamicPrefix and
pools this module creates are removed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamic_prefix.model import api
from dynamic_prefix.operator.runtime import DEFAULT_HEALTH_PORT, DEFAULT_METRICS_PORT
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CALICO_POOL,
    CILIUM_CIDR_GROUP,
    CILIUM_LB_POOL,
    DP_PATH,
    METALLB_POOL,
    Pools,
    create,
    create_dynamic_prefix,
    dynamic_prefix,
    events_about,
    fill_and_rotate,
    new_tag,
    running,
    wait_pool,
)

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
POOL_CRDS = REPO / "testbed/crds"
NAMESPACE = "dynamic-prefix-system"
SERVICE_ACCOUNT = "dynamic-prefix-operator"
USERNAME = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
DEPLOYMENT = "dynamic-prefix-operator"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
WAIT_SECONDS = 15.0
A, B = "2001:db8:de1::/64", "2001:db8:de2::/64"


# --- rendering ---------------------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a directory under deploy/: the objects it would apply."""
    result = subprocess.run(
        [os.environ.get("KUBECTL", "kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


VARIANTS = [DEPLOY, *sorted((DEPLOY / "overlays").iterdir())]


@pytest.mark.parametrize("directory", VARIANTS, ids=[p.name for p in VARIANTS])
def test_every_variant_renders_without_a_deprecation_warning(directory: Path) -> None:
    """Current kustomize syntax (`resources`, `patches`), as kustomize v5, Flux and Argo CD
    read it: the kubectl of this machine warns about anything deprecated."""
    result = subprocess.run(
        [os.environ.get("KUBECTL", "kubectl"), "kustomize", str(directory)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "# Warning" not in result.stdout, "a warning inside the output"


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(objects, "Deployment", DEPLOYMENT)["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


def rules(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every RBAC rule, with the kind of role that holds it."""
    return [
        (obj["kind"], rule)
        for obj in objects
        if obj["kind"] in ("ClusterRole", "Role")
        for rule in obj.get("rules") or []
    ]


def granted_writes(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every write the ClusterRole grants."""
    return {
        (group, resource, verb)
        for kind, rule in rules(objects)
        if kind == "ClusterRole"
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
        if verb in WRITE_VERBS
    }


# --- what the manifests say --------------------------------------------------------------


def test_the_default_install_holds_the_crd_the_account_its_roles_and_the_deployment() -> None:
    objects = render(DEPLOY)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        [
            ("Namespace", NAMESPACE),
            ("CustomResourceDefinition", api.CRD_NAME),
            ("ServiceAccount", SERVICE_ACCOUNT),
            ("ClusterRole", "dynamic-prefix-operator"),
            ("ClusterRoleBinding", "dynamic-prefix-operator"),
            ("Role", "dynamic-prefix-operator-leader-election"),
            ("RoleBinding", "dynamic-prefix-operator-leader-election"),
            ("Deployment", DEPLOYMENT),
        ]
    )
    crd = yaml.safe_load((DEPLOY / "crd/dynamicprefixes.yaml").read_text(encoding="utf-8"))
    assert find(objects, "CustomResourceDefinition") == crd, "the generated CRD, unchanged"
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "Deployment"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]
    for binding in (find(objects, "ClusterRoleBinding"), find(objects, "RoleBinding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        ]


def test_the_pod_is_on_the_host_network_as_root_holding_only_net_raw_on_a_read_only_root() -> None:
    objects = render(DEPLOY)
    deployment = find(objects, "Deployment", DEPLOYMENT)
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert deployment["spec"]["replicas"] == 1
    # old pod before new: a surge pod could not bind the node's ports next to the old
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
    }
    assert container["args"] == [
        "run",
        "--log-format=json",
        "--health-host=127.0.0.1",  # probes: the node's loopback only
        f"--health-port={DEFAULT_HEALTH_PORT}",
        "--metrics-host=$(POD_IP)",  # metrics: the node's own address, HTTPS and a token
        f"--metrics-port={DEFAULT_METRICS_PORT}",
    ]
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # link_watch.on_host_network compares them
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert container["ports"] == [
        {"name": "https-metrics", "containerPort": DEFAULT_METRICS_PORT, "protocol": "TCP"}
    ]
    # the kubelet is on the node's network too: it reaches the probes on loopback
    probe = {"host": "127.0.0.1", "port": DEFAULT_HEALTH_PORT}
    assert container["livenessProbe"]["httpGet"] == {**probe, "path": "/healthz"}
    assert container["readinessProbe"]["httpGet"] == {**probe, "path": "/readyz"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"memory"}


def test_the_deployment_runs_the_image_the_build_script_makes() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    container = operator_container(render(DEPLOY))
    assert container["image"] == f"localhost/dynamic-prefix-operator:{version}"
    script = (REPO / "scripts/build-image.sh").read_text(encoding="utf-8")
    assert "localhost/dynamic-prefix-operator:$version" in script


def test_no_rule_grants_secrets_wildcards_or_non_resource_urls() -> None:
    found = rules(render(DEPLOY))
    assert found
    for kind, rule in found:
        assert "nonResourceURLs" not in rule, (kind, rule)
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], (kind, rule)
        assert not {"secrets", "pods", "configmaps"} & set(rule["resources"]), (kind, rule)
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
    namespaced = [rule for kind, rule in found if kind == "Role"]
    assert namespaced == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]


def test_the_dhcpv6_overlay_adds_net_bind_service_and_changes_nothing_else() -> None:
    base, overlay = render(DEPLOY), render(DEPLOY / "overlays/dhcpv6")
    capabilities = operator_container(overlay)["securityContext"]["capabilities"]
    assert capabilities == {"drop": ["ALL"], "add": ["NET_RAW", "NET_BIND_SERVICE"]}
    capabilities["add"].remove("NET_BIND_SERVICE")
    assert overlay == base


def test_the_netlink_overlay_runs_as_the_image_user_without_any_capability() -> None:
    container = operator_container(render(DEPLOY / "overlays/netlink-nonroot"))
    context = container["securityContext"]
    assert context["runAsUser"] == context["runAsGroup"] == 65532
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    containerfile = (REPO / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^USER 65532:65532$", containerfile, re.MULTILINE), "the image's user"


def test_the_metrics_service_selects_the_operator_pod_and_its_named_port() -> None:
    objects = render(DEPLOY / "overlays/metrics")
    service = find(objects, "Service")
    assert service["metadata"]["namespace"] == NAMESPACE
    labels = find(objects, "Deployment", DEPLOYMENT)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {port["name"] for port in operator_container(objects)["ports"]}
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["https-metrics"]
    assert "https-metrics" in ports
    (reader,) = [
        o for o in objects if o["kind"] == "ClusterRole" and "metrics" in o["metadata"]["name"]
    ]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    added = [o for o in objects if o["kind"] != "Service" and o is not reader]
    assert added == render(DEPLOY)


# --- against the API server --------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """deploy/ applied, and a token of its ServiceAccount."""

    token: str
    kubeconfig: Path


@pytest.fixture(scope="module")
def deployed(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    control_plane.kubectl("apply", "-k", str(DEPLOY))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", f"crd/{api.CRD_NAME}"
    )
    token = control_plane.create_service_account_token(NAMESPACE, SERVICE_ACCOUNT, create=False)
    kubeconfig = tmp_path_factory.mktemp("service-account") / "kubeconfig"
    control_plane.kubeconfig_for_token(token, kubeconfig, user=SERVICE_ACCOUNT)
    return Deployed(token, kubeconfig)


@pytest.fixture(scope="module")
def pool_crds(control_plane: ControlPlane) -> None:
    """The Cilium, MetalLB and Calico pool and BGP kinds, installed as admin before any
    operator starts (the session's convention; tests/operator/test_crd_discovery.py covers
    kinds installed later, on a control plane of its own)."""
    for name in ("cilium-v2.yaml", "metallb.yaml", "calico.yaml", "calico-classic.yaml",
                 "cilium-bgp-v2.yaml", "metallb-bgp.yaml", "calico-bgp.yaml"):  # fmt: skip
        control_plane.kubectl("apply", "-f", str(POOL_CRDS / name))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")


def test_kubectl_apply_k_is_accepted_and_the_server_keeps_every_field(
    control_plane: ControlPlane, deployed: Deployed
) -> None:
    stored = json.loads(control_plane.kubectl("get", "-k", str(DEPLOY), "-o", "json").stdout)
    assert len(stored["items"]) == len(render(DEPLOY))
    pod = find(stored["items"], "Deployment", DEPLOYMENT)["spec"]["template"]["spec"]
    want = operator_container(render(DEPLOY))
    got = pod["containers"][0]
    for field in ("image", "args", "securityContext", "resources", "volumeMounts"):
        assert got[field] == want[field], field
    assert pod["hostNetwork"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("overlay", ["dhcpv6", "netlink-nonroot", "metrics"])
def test_every_overlay_is_accepted_by_the_api_server(
    control_plane: ControlPlane, deployed: Deployed, overlay: str
) -> None:
    control_plane.kubectl("apply", "--dry-run=server", "-k", str(DEPLOY / "overlays" / overlay))


class ServiceAccountOperator(OperatorProcess):
    """`dynamic-prefix run` with a kubeconfig of its own, as the Deployment runs it."""

    def __init__(self, plane: ControlPlane, log_path: Path, kubeconfig: Path) -> None:
        super().__init__(plane, log_path)
        self.kubeconfig = kubeconfig
        # the Deployment's POD_NAMESPACE: the Role for the Lease is in that namespace
        self.extra_args = ("--log-format", "json", "--lease-namespace", NAMESPACE)


@pytest.fixture
def sa_operator(
    control_plane: ControlPlane, deployed: Deployed, pool_crds: None, tmp_path: Path
) -> Iterator[ServiceAccountOperator]:
    process = ServiceAccountOperator(control_plane, tmp_path / "operator.log", deployed.kubeconfig)
    with running(process):
        yield process


# A refusal by the API server, as the operator would log it. Writes into a namespace
# being deleted are refused with 403 too: a namespace left Terminating by another test (no
# controller-manager here) can hold pools the operator posts events about.
_REFUSAL = re.compile(r"\b403\b|forbidden|not enough permissions", re.IGNORECASE)


def _into_terminating_namespace(write: dict[str, Any], terminating: set[str]) -> bool:
    """An Event refused because its namespace is being deleted, not for lack of rights:
    earlier tests leave namespaces Terminating for good (no controller-manager here), and
    pools in them still get events. The audit log (Metadata level) says only "403"."""
    ref = write.get("objectRef") or {}
    return ref.get("resource") == "events" and ref.get("namespace") in terminating


def _terminating_namespaces(control_plane: ControlPlane) -> set[str]:
    listing = control_plane.request("GET", "/api/v1/namespaces").json()
    return {
        item["metadata"]["name"]
        for item in listing.get("items") or []
        if (item.get("status") or {}).get("phase") == "Terminating"
    }


def refusals(log: str) -> list[str]:
    """Log lines that report a request refused for lack of permission."""
    return [
        line for line in log.splitlines()
        if _REFUSAL.search(line) and "because it is being terminated" not in line
    ]  # fmt: skip


BGP_SUBNET = {"name": "bgp", "offset": 1, "prefixLength": 80,
              "bgp": {"advertise": True, "community": "65001:42"}}  # fmt: skip
BGP_SUBNET_CIDR_B = "2001:db8:de2:0:1::/80"  # subnet bgp of B
CALICO_BGP_DEFAULT = "/apis/projectcalico.org/v3/bgpconfigurations/default"


def _has_spec(cluster: Cluster, path: str, spec: Any) -> bool | None:
    return (cluster.get(path) or {}).get("spec") == spec or None


def announce_subnet(cluster: Cluster, dp: str, namespace: str) -> list[str]:
    """Pools of every speaker fed by an announced subnet; the operator's BGP objects made,
    then edited by a user (the operator patches them back). Their paths."""
    cilium = CILIUM_LB_POOL.manifest(f"{dp}-bgp", dp=dp, address_range=None, subnet="bgp",
                                     entries=[])  # fmt: skip
    cilium["spec"]["serviceSelector"] = {"matchLabels": {"app": dp}}
    cluster.apply(cilium)
    cluster.apply(METALLB_POOL.manifest(f"{dp}-bgp", dp=dp, address_range=None, subnet="bgp",
                                        namespace=namespace, entries=[]))  # fmt: skip
    cluster.apply(CALICO_POOL.manifest(f"{dp}-bgp", dp=dp, address_range=None, subnet="bgp"))
    adverts = [
        f"/apis/cilium.io/v2/ciliumbgpadvertisements/dp-{dp}-bgp",
        f"/apis/metallb.io/v1beta1/namespaces/{namespace}/bgpadvertisements/dp-{dp}-bgp",
    ]
    for path in adverts:
        made = wait_for(functools.partial(cluster.get, path), timeout=WAIT_SECONDS,
                        what=f"{path} made")  # fmt: skip
        # a user's edit of our field: the operator patches it back
        if "cilium" in path:
            cluster.patch(path, {"spec": {"advertisements": [{"advertisementType": "PodCIDR"}]}})
        else:
            cluster.patch(path, {"spec": {"ipAddressPools": ["someone-elses"]}})
        wait_for(functools.partial(_has_spec, cluster, path, made["spec"]),
                 timeout=WAIT_SECONDS, what=f"{path} patched back")  # fmt: skip
    wait_for(lambda: cluster.get(CALICO_BGP_DEFAULT), timeout=WAIT_SECONDS,
             what="Calico's BGPConfiguration created")  # fmt: skip
    return adverts


def fill_rotate_release(cluster: Cluster, dp: str, pools: Pools, namespace: str) -> None:
    """The operator's job end to end: pools and a Service filled, a new prefix, the
    DynamicPrefix deleted."""
    obj = dynamic_prefix(dp, A, history=2, subnets=[BGP_SUBNET])
    obj["spec"]["transition"]["mode"] = "ha"  # Services are patched too
    cluster.delete(CALICO_BGP_DEFAULT)  # so that the operator creates it
    create_dynamic_prefix(cluster, obj)
    announced = announce_subnet(cluster, dp, namespace)
    service = f"{dp}-web"
    services = f"/api/v1/namespaces/{namespace}/services"
    create(cluster, services, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service, "namespace": namespace, "annotations": {
            api.ANNOTATION_NAME: dp, "dynamic-prefix.io/suffix": "::ffff:0:0:2",
            "dynamic-prefix.io/lb-provider": "cilium"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    })  # fmt: skip
    fill_and_rotate(cluster, dp, pools, A, B)
    wait_for(
        lambda: (
            (cluster.get(f"{services}/{service}") or {}).get("metadata", {}).get("annotations", {})
        ).get("dynamic-prefix.io/managed-ips", "").count(",") == 1 or None,
        timeout=WAIT_SECONDS, what="the Service holds the new and the old address",
    )  # fmt: skip

    wait_for(lambda: BGP_SUBNET_CIDR_B in json.dumps(cluster.get(CALICO_BGP_DEFAULT)) or None,
             timeout=WAIT_SECONDS, what="Calico's BGPConfiguration patched")  # fmt: skip
    cluster.delete(f"{DP_PATH}/{dp}")
    wait_for(
        lambda: cluster.get(f"{DP_PATH}/{dp}") is None,
        timeout=WAIT_SECONDS,
        what=f"{dp} finalized and gone",
    )
    for path in announced:
        assert cluster.get(path) is None, f"{path} deleted with the DynamicPrefix"
    for kind, name, where in pools:
        wait_pool(cluster, kind, name, kind.released(), namespace=where, what="released")
    wait_for(
        lambda: events_about(cluster, dp, reason="PoolsReleased"),
        timeout=WAIT_SECONDS,
        what="a PoolsReleased event about the DynamicPrefix in default",
    )
    for kind, name, where in pools:
        if where is not None:
            wait_for(
                functools.partial(
                    events_about, cluster, name, namespace=where, reason="PoolReleased"
                ),
                timeout=WAIT_SECONDS,
                what=f"a PoolReleased event next to {kind.id} {where}/{name}",
            )


def test_the_operator_does_its_whole_job_as_the_service_account_using_every_write_granted(
    control_plane: ControlPlane,
    deployed: Deployed,
    sa_operator: ServiceAccountOperator,
    namespace: str,
) -> None:
    cluster = Cluster(control_plane)
    tag = new_tag()
    dp = f"rbac-{tag}"
    pools: Pools = [
        (CILIUM_LB_POOL, f"rbac-lb-{tag}", None),
        (CILIUM_CIDR_GROUP, f"rbac-cidrs-{tag}", None),
        (METALLB_POOL, f"rbac-metallb-{tag}", namespace),
        (CALICO_POOL, f"rbac-calico-{tag}", None),
    ]
    try:
        fill_rotate_release(cluster, dp, pools, namespace)
        # a scrape, as Prometheus makes one: the token is reviewed with the account's rights
        assert sa_operator.http_get("/metrics")[0] == 200
    except AssertionError as error:
        found = refusals(sa_operator.log())
        if not found:
            raise
        shown = "\n".join(found)[-5000:]
        raise AssertionError(f"{error}\nrefused, in the operator's log:\n{shown}") from None
    finally:
        sa_operator.stop()
        for kind, name, where in pools:
            cluster.delete(kind.path(name, where))
        cluster.delete(CILIUM_LB_POOL.path(f"{dp}-bgp"))
        cluster.delete(METALLB_POOL.path(f"{dp}-bgp", namespace))
        cluster.delete(CALICO_POOL.path(f"{dp}-bgp"))
        cluster.delete(f"{DP_PATH}/{dp}")

    assert sa_operator.process is not None
    assert sa_operator.process.returncode == 0, "the operator stopped cleanly"
    assert refusals(sa_operator.log()) == []

    mine = [w for w in control_plane.audit_writes() if w["user"]["username"] == USERNAME]
    terminating = _terminating_namespaces(control_plane)
    refused = [
        w for w in mine
        if w["responseStatus"]["code"] == 403
        and not _into_terminating_namespace(w, terminating)
    ]  # fmt: skip
    assert refused == [], json.dumps(refused, indent=1)[:3000]
    used = {
        (
            w["objectRef"].get("apiGroup", ""),
            "/".join(filter(None, (w["objectRef"]["resource"], w["objectRef"].get("subresource")))),
            w["verb"],
        )
        for w in mine
        if w["responseStatus"]["code"] < 400
    }
    assert granted_writes(render(DEPLOY)) - used == set(), "granted but never needed"


# Asked with the ServiceAccount's token. Writes are refused before their body is read, so
# an empty body is enough to ask.
REFUSED = [
    ("GET", "/api/v1/namespaces/kube-system/secrets"),
    ("GET", "/api/v1/secrets"),
    ("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/any"),
    ("DELETE", "/apis/cilium.io/v2/ciliumloadbalancerippools/any"),
    ("POST", "/apis/cilium.io/v2/ciliumloadbalancerippools"),
    ("DELETE", "/apis/metallb.io/v1beta1/namespaces/default/ipaddresspools/any"),
    ("POST", f"/apis/{api.API_VERSION}/{api.PLURAL}"),
    ("PUT", f"/apis/{api.API_VERSION}/{api.PLURAL}/any"),
    ("DELETE", f"/apis/{api.API_VERSION}/{api.PLURAL}/any"),
    ("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}"),
    ("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}"),
    ("GET", "/api/v1/namespaces/default/events"),
    ("GET", "/api/v1/namespaces"),
    ("GET", "/api/v1/configmaps"),
    ("POST", f"/api/v1/namespaces/{NAMESPACE}/pods"),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/any"),
    ("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/any"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
]
# The same token is accepted for what the operator does, so the refusals above are RBAC's.
ALLOWED = [
    ("GET", "/apis", 200),
    ("GET", f"/apis/{api.API_VERSION}/{api.PLURAL}", 200),
    ("GET", "/apis/metallb.io/v1beta1/ipaddresspools", 200),
    ("GET", "/apis/projectcalico.org/v3/ippools/absent", 404),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", 200),
    ("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/absent", 404),
]


@pytest.mark.parametrize(("method", "path"), REFUSED, ids=[f"{m} {p}" for m, p in REFUSED])
def test_the_service_account_is_refused_anything_the_operator_does_not_do(
    control_plane: ControlPlane, deployed: Deployed, method: str, path: str
) -> None:
    body: dict[str, Any] | None = None if method in ("GET", "DELETE") else {}
    response = control_plane.request(method, path, body=body, token=deployed.token)
    assert response.status == 403, response.body


@pytest.mark.usefixtures("pool_crds")
@pytest.mark.parametrize(
    ("method", "path", "status"), ALLOWED, ids=[f"{m} {p}" for m, p, _ in ALLOWED]
)
def test_the_service_account_may_read_what_the_operator_reads(
    control_plane: ControlPlane, deployed: Deployed, method: str, path: str, status: int
) -> None:
    response = control_plane.request(method, path, token=deployed.token)
    assert response.status == status, response.body
