"""Where each pool's or Service's range or subnet is, per DynamicPrefix version: computed
once per change for all that share it, and only the latest version kept (so memory does
not grow with the number of rotations)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynamic_prefix.backends.base import (
    Placement,
    PlacementsFor,
    PoolReference,
    resolve_placements,
    retired_placements,
)
from dynamic_prefix.model.spec import DynamicPrefixSpec, InvalidSpec, validate_dynamic_prefix


class PlacementCache:
    """`resolve_placements` for (reference, DynamicPrefix), remembered for the latest
    resourceVersion of each DynamicPrefix and reference; callable like it."""

    def __init__(self) -> None:
        self._held: dict[PoolReference, tuple[str, object, tuple[Placement, ...]]] = {}
        self._retired: dict[PoolReference, tuple[str, object, tuple[Placement, ...]]] = {}
        self._specs: dict[str, tuple[str, DynamicPrefixSpec | InvalidSpec]] = {}

    def spec(self, dynamic_prefix: Mapping[str, Any]) -> DynamicPrefixSpec | InvalidSpec:
        """`validate_dynamic_prefix`, once per version of each DynamicPrefix (a prefix
        change asks it for every Service). It stays in front of that function's own memo:
        a version compare is a dict lookup, the memo's key a JSON text of the spec
        (3 µs, 3 ms per 1,000-Service change)."""
        metadata = dynamic_prefix["metadata"]
        name, version = str(metadata.get("name", "")), str(metadata.get("resourceVersion", ""))
        held = self._specs.get(name)
        if held is not None and held[0] == version:
            return held[1]
        spec = validate_dynamic_prefix(dynamic_prefix)
        self._specs[name] = (version, spec)
        return spec

    def __call__(
        self, reference: PoolReference, dynamic_prefix: Mapping[str, Any]
    ) -> tuple[Placement, ...]:
        return _latest(self._held, resolve_placements, reference, dynamic_prefix)

    def retired(
        self, reference: PoolReference, dynamic_prefix: Mapping[str, Any]
    ) -> tuple[Placement, ...]:
        """`retired_placements`, kept the same way (asked for every pool of a change)."""
        return _latest(self._retired, retired_placements, reference, dynamic_prefix)

    def forget(self, name: str) -> None:
        """The DynamicPrefix ``name`` is gone."""
        for table in (self._held, self._retired):
            for reference in [r for r in table if r.dynamic_prefix == name]:
                del table[reference]
        self._specs.pop(name, None)


def _latest(
    table: dict[PoolReference, tuple[str, object, tuple[Placement, ...]]],
    compute: PlacementsFor,
    reference: PoolReference,
    dynamic_prefix: Mapping[str, Any],
) -> tuple[Placement, ...]:
    """``compute(reference, dynamic_prefix)`` for its latest version only; problems
    (`ReferenceProblem`) are not kept.

    A version is its resourceVersion *and* its status object: the controller hands the
    pools a decided status before the server has written it (same resourceVersion, new
    status); the status object is kept with the entry, so its identity cannot be reused.
    """
    version = str(dynamic_prefix["metadata"].get("resourceVersion", ""))
    status = dynamic_prefix.get("status")
    held = table.get(reference)
    if held is not None and held[0] == version and held[1] is status:
        return held[2]
    placements = compute(reference, dynamic_prefix)
    table[reference] = (version, status, placements)
    return placements
