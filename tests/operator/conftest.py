"""The operator as users run it: a `dynamic-prefix run` process against the real control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess
from tests.operator.operator_testkit import running

CRDS = Path(__file__).parents[2] / "testbed/crds"
POOL_CRD_FILES = ("cilium-v2.yaml", "metallb.yaml", "calico.yaml", "calico-classic.yaml")
BGP_CRD_FILES = ("cilium-bgp-v2.yaml", "metallb-bgp.yaml", "calico-bgp.yaml")
"""The BGP kinds of the default versions; cilium-bgp-v2alpha1.yaml (Cilium 1.16/1.17) is for
a control plane of a test's own, like cilium-v2alpha1.yaml."""


@pytest.fixture(scope="session")
def pool_crds(control_plane: ControlPlane, dynamic_prefix_crd: str) -> None:
    """Test CRDs of the Cilium (v2 + v2alpha1), MetalLB and Calico pool kinds, and of the
    BGP kinds the operator writes for them (CiliumBGPAdvertisement, MetalLB BGPAdvertisement,
    Calico BGPConfiguration), installed."""
    for name in (*POOL_CRD_FILES, *BGP_CRD_FILES):
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
    with running(OperatorProcess(control_plane, tmp_path / "operator.log")) as process:
        yield process


@pytest.fixture(scope="module")
def module_operator_process(
    control_plane: ControlPlane, pool_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for a whole module, so its tests do not each pay for a start.

    A module must not mix it with `operator`: two operators would fight over the objects.
    """
    log_path = tmp_path_factory.mktemp("module-operator") / "operator.log"
    process = OperatorProcess(control_plane, log_path).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def shared_operator(module_operator_process: OperatorProcess) -> Iterator[OperatorProcess]:
    """The module's running operator; the log lines it wrote during the test are shown after."""
    process = module_operator_process
    running = process.process is not None and process.process.poll() is None
    assert running, "the module's operator has exited:\n" + process.log()[-5000:]
    start = len(process.log())
    try:
        yield process
    finally:
        print("---- operator log during this test ----\n" + process.log()[start:][-20000:])
