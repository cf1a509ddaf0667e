"""Fixtures shared by all tests: the real control plane of TESTBED.md, per-test namespaces,
and links between network namespaces (skipped where namespaces cannot be made)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.netns import Link
from tests.requirements import needs_namespaces


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the control plane, so `-m "not controlplane"` leaves it out."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.controlplane)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the whole run.

    Binaries that cannot be found or built are an error, not a skip: a suite that quietly
    skips its integration tests would pass without testing anything real.
    """
    with ControlPlane() as plane:
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, so leftovers show which test made them.

    Deleted without waiting: with no controller-manager it stays Terminating for good.
    """
    name = namespace_name(request.node.name)
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def namespace_name(test_name: str) -> str:
    """A valid, unique namespace name (DNS label) derived from a test's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:50].rstrip("-")
    return f"{slug or 'test'}-{secrets.token_hex(3)}"


CRD_MANIFEST = Path(__file__).parents[1] / "deploy/crd/dynamicprefixes.yaml"


@pytest.fixture(scope="session")
def dynamic_prefix_crd(control_plane: ControlPlane) -> str:
    """The DynamicPrefix CRD installed (and established) on the session's control plane."""
    control_plane.kubectl("apply", "-f", str(CRD_MANIFEST))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", f"crd/{api.CRD_NAME}"
    )
    return api.CRD_NAME


@pytest.fixture
def network_namespaces() -> None:
    """Skips the test where network namespaces cannot be made (no root, no `ip netns`)."""
    needs_namespaces()


@pytest.fixture
def link(network_namespaces: None) -> Iterator[Link]:
    """A veth pair with each end in a namespace of its own: router and node."""
    with Link() as up:
        yield up


@pytest.fixture
def root_link(network_namespaces: None) -> Iterator[Link]:
    """A link whose node end is in the root namespace, where the operator runs and reaches
    the control plane (accept_ra_defrtr=0: the machine takes no default route from it)."""
    with Link(node_in_root_namespace=True) as up:
        yield up


@pytest.fixture
def root_slaac_link(network_namespaces: None) -> Iterator[Link]:
    """`root_link` whose node end also forms SLAAC addresses from the router's RAs."""
    with Link(node_in_root_namespace=True, slaac=True) as up:
        yield up
