"""Classic Calico IPPools (crd.projectcalico.org/v1): seen and judged, never written.

These CRDs are where Calico stores its resources; Calico's documentation says they are
not for users to edit: IPPools are written through calicoctl or the Calico API server
(projectcalico.org/v3, which the operator handles). The operator therefore writes
nothing here; an annotated one gets a Warning saying so and counts as not in sync.
Where the Calico API server runs, these objects are the storage of the v3 pools, but
they do not carry the v3 pool's annotations as their own (Calico keeps the v3 metadata
in the JSON of their ``projectcalico.org/metadata`` annotation): only a pool annotated
directly on crd.projectcalico.org is seen here, never a v3 pool a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.backends.base import Placement, Plan
from dynamic_prefix.kube.client import Resource

UNSUPPORTED = (
    "an IPPool of crd.projectcalico.org/v1 (Calico's storage, which its documentation says "
    "not to edit) is not written by the operator: install the Calico API server and "
    "annotate the projectcalico.org/v3 IPPool, or use a Cilium or MetalLB pool"
)


@dataclass(frozen=True, slots=True)
class ClassicCalicoPools:
    """The crd.projectcalico.org/v1 IPPool kind, watched only to tell users."""

    name: str = "calico-crd-ip-pool"
    group: str = "crd.projectcalico.org"
    plural: str = "ippools"
    kind: str = "IPPool"
    versions: tuple[str, ...] = ("v1",)

    def plan(
        self,
        resource: Resource,
        pool: Mapping[str, Any],
        placements: Sequence[Placement] | None,
        *,
        generated: Sequence[Mapping[str, Any]] = (),
        retired: Sequence[Placement] = (),
    ) -> Plan:
        """Nothing to write ever; annotated (placements not None), it is unsupported."""
        del resource, pool, generated, retired
        return Plan() if placements is None else Plan(unsupported=(UNSUPPORTED,))


CLASSIC_IP_POOL = ClassicCalicoPools()
