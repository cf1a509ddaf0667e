"""The DynamicPrefix CRD on a real kube-apiserver: installs, accepts, refuses, prints."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamic_prefix.model import api
from dynamic_prefix.model.schema import check, with_defaults
from testbed.controlplane import ControlPlane

EXAMPLE = Path(__file__).parents[2] / "src/dynamic_prefix/examples/home-prefix.yaml"

pytestmark = pytest.mark.usefixtures("dynamic_prefix_crd")


def apply(control_plane: ControlPlane, obj: dict[str, Any], *, check: bool = True) -> str:
    # --validate=false: the message must come from the server, not kubectl's own check
    result = control_plane.kubectl(
        "apply", "--validate=false", "-f", "-", input=json.dumps(obj), check=check
    )
    return result.stdout + result.stderr


def get(control_plane: ControlPlane, name: str) -> dict[str, Any]:
    result = control_plane.kubectl("get", "dynamicprefix", name, "-o", "json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def example(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    obj["metadata"]["name"] = name
    return obj


def test_crd_is_cluster_scoped_with_status_subresource_and_short_names(
    control_plane: ControlPlane,
) -> None:
    result = control_plane.kubectl("api-resources", "--api-group", api.GROUP, "-o", "wide")
    line = next(row for row in result.stdout.splitlines() if row.startswith(api.PLURAL))
    assert "dp,dprefix" in line
    assert "false" in line.split()  # NAMESPACED column
    crd = json.loads(control_plane.kubectl("get", "crd", api.CRD_NAME, "-o", "json").stdout)
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_user_guide_example_is_accepted_and_reads_back_identical(
    control_plane: ControlPlane,
) -> None:
    obj = example("guide-example")
    apply(control_plane, obj)
    stored = get(control_plane, "guide-example")
    assert stored["spec"] == obj["spec"]


def test_server_fills_the_same_defaults_as_the_local_schema(control_plane: ControlPlane) -> None:
    obj = example("defaults")
    obj["spec"]["acquisition"] = {"dhcpv6pd": {"interface": "eth0"}}
    obj["spec"]["subnets"] = [{"name": "s", "prefixLength": 64}]
    obj["spec"]["transition"] = {}
    obj["spec"]["addressRanges"] = []
    apply(control_plane, obj)
    stored = get(control_plane, "defaults")["spec"]
    assert stored == with_defaults(api.spec_schema(), obj["spec"])
    assert stored["transition"] == {"mode": "simple", "maxPrefixHistory": 2}
    # no default: unset stays unset, so that subnets are judged against the delegation
    assert "requestedPrefixLength" not in stored["acquisition"]["dhcpv6pd"]


@pytest.mark.parametrize(
    ("change", "server_says"),
    [
        ({"transition": {"mode": "fast"}}, 'spec.transition.mode: Unsupported value: "fast"'),
        ({"transition": {"maxPrefixHistory": 11}}, "spec.transition.maxPrefixHistory"),
        (
            {"addressRanges": [{"name": "Bad_Name", "start": "::1", "end": "::2"}]},
            r"spec.addressRanges(\[0\])?.name",
        ),
        ({"addressRanges": [{"name": "a", "start": "::1"}]}, r"spec.addressRanges(\[0\])?.end"),
        (
            {"subnets": [{"name": "s", "prefixLength": 129}]},
            r"spec.subnets(\[0\])?.prefixLength",
        ),
        (
            {"acquisition": {"dhcpv6pd": {"interface": "eth0", "requestedPrefixLength": 40}}},
            "spec.acquisition.dhcpv6pd.requestedPrefixLength",
        ),
        (
            {
                "addressRanges": [
                    {"name": "a", "start": "::1", "end": "::2"},
                    {"name": "a", "start": "::3", "end": "::4"},
                ]
            },
            "Duplicate value",
        ),
    ],
)
def test_schema_violation_is_refused_by_the_server_and_by_the_local_check(
    control_plane: ControlPlane, change: dict[str, Any], server_says: str
) -> None:
    obj = example("invalid")
    obj["spec"].update(change)
    output = apply(control_plane, obj, check=False)
    # kube-apiserver 1.20 leaves list indices out of field paths; newer ones write them
    assert re.search(server_says, output), output
    assert check(api.spec_schema(), obj["spec"], "spec"), "the local schema check must agree"


def test_kubectl_get_shows_the_printer_columns(control_plane: ControlPlane) -> None:
    apply(control_plane, example("columns"))
    control_plane.kubectl(
        "patch", "dp", "columns", "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": {"currentPrefix": "2001:db8:abcd:1::/64",
                               "prefixSource": "router-advertisement"}}),
        check=False,
    )  # fmt: skip
    if get(control_plane, "columns").get("status") is None:
        # kubectl older than 1.24 has no --subresource; write status through the API
        response = control_plane.request(
            "PATCH",
            f"/apis/{api.API_VERSION}/{api.PLURAL}/columns/status",
            body={"status": {"currentPrefix": "2001:db8:abcd:1::/64",
                             "prefixSource": "router-advertisement"}},
        )  # fmt: skip
        assert response.status == 200, response.body
    table = control_plane.kubectl("get", "dp", "columns").stdout.splitlines()
    assert table[0].split() == ["NAME", "PREFIX", "SOURCE", "READY", "AGE"]
    assert table[1].split()[:3] == ["columns", "2001:db8:abcd:1::/64", "router-advertisement"]
