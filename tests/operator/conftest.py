"""The operator as users run it: a `dynamic-prefix run` process against the real control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dynamic_prefix.testbed.controlplane import ControlPlane
from dynamic_prefix.testbed.harness import Cluster, OperatorProcess

CRDS = Path(__file__).parent / "crds"


@pytest.fixture(scope="session")
def pool_crds(control_plane: ControlPlane, dynamic_prefix_crd: str) -> None:
    """Test CRDs of the Cilium (v2 + v2alpha1), MetalLB and Calico pool kinds, installed."""
    for name in ("cilium-v2.yaml", "metallb.yaml", "calico.yaml"):
        control_plane.kubectl("apply", "-f", str(CRDS / name))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")


@pytest.fixture
def cluster(control_plane: ControlPlane, pool_crds: None) -> Cluster:
    return Cluster(control_plane)


@pytest.fixture
def operator(
    control_plane: ControlPlane, pool_crds: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """A running operator; stopped (by PID) after the test, its log shown on failure."""
    process = OperatorProcess(control_plane, tmp_path / "operator.log").start()
    try:
        yield process
    finally:
        process.stop()
        print("---- operator log ----\n" + process.log()[-20000:])
