"""The Service watch decodes only what concerns the operator: judged on the raw lines the
real API server sends (their layout is what the filter relies on)."""

from __future__ import annotations

import copy
from urllib.parse import urlencode

from dynamic_prefix.operator.service_index import ServiceIndex
from testbed.harness import Cluster
from tests.operator.operator_testkit import new_tag, resource_version

SERVICES = "/api/v1/namespaces/default/services"


def service(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    }  # fmt: skip


def raw_lines(cluster: Cluster, since: str) -> dict[str, bytes]:
    """The raw watch line of each Service changed since ``since``, by name (the last)."""
    params = {"watch": "1", "resourceVersion": since, "timeoutSeconds": "1"}
    response = cluster.plane.request("GET", f"{SERVICES}?{urlencode(params)}")
    assert response.status == 200, response.body
    found = {}
    for line in response.body.splitlines():
        if b'"name":"' in line:
            name = line.split(b'"metadata":{"name":"', 1)[1].split(b'"', 1)[0].decode()
            found[name] = line
    return found


def test_only_lines_about_the_operators_services_are_decoded(cluster: Cluster) -> None:
    tag = new_tag()
    plain, ours, generated = f"plain-{tag}", f"ours-{tag}", f"gen-{tag}-"
    since = resource_version(cluster, SERVICES)
    cluster.apply(service(plain, {"note": "nothing of ours"}))
    cluster.apply(service(ours, {"dynamic-prefix.io/name": "home"}))
    created = cluster.plane.request(
        "POST", SERVICES,
        body={**service("", {}), "metadata": {"generateName": generated, "namespace": "default"}},
    )  # fmt: skip
    assert created.status == 201, created.body
    generated_name = created.json()["metadata"]["name"]
    try:
        lines = raw_lines(cluster, since)
        index = ServiceIndex()

        assert index.is_candidate_line(lines[ours])
        assert not index.is_candidate_line(lines[plain]), "an ordinary Service is not decoded"
        assert not index.is_candidate_line(lines[generated_name]), "nor one with generateName"

        # a Service held (it was ours) that lost every annotation of ours is still decoded:
        # the index must hear that it left
        held = copy.deepcopy(service(plain, {"dynamic-prefix.io/name": "home"}))
        index.put(held)
        assert index.is_candidate_line(lines[plain])
    finally:
        for name in (plain, ours, generated_name):
            cluster.delete(f"{SERVICES}/{name}")
