"""Where each pool's or Service's range or subnet is, per DynamicPrefix version: computed
once per change for all that share it, and only the latest version kept (so memory does
not grow with the number of rotations)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynamic_prefix.backends.base import Placement, PoolReference, resolve_placements
from dynamic_prefix.model.spec import DynamicPrefixSpec, InvalidSpec, validate_dynamic_prefix


class PlacementCache:
    """`resolve_placements` for (reference, DynamicPrefix), remembered for the latest
    resourceVersion of each DynamicPrefix and reference; callable like it."""

    def __init__(self) -> None:
        self._held: dict[PoolReference, tuple[str, tuple[Placement, ...]]] = {}
        self._specs: dict[str, tuple[str, DynamicPrefixSpec | InvalidSpec]] = {}

    def spec(self, dynamic_prefix: Mapping[str, Any]) -> DynamicPrefixSpec | InvalidSpec:
        """`validate_dynamic_prefix`, once per version of each DynamicPrefix (a prefix
        change asks it for every Service)."""
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
        version = str(dynamic_prefix["metadata"].get("resourceVersion", ""))
        held = self._held.get(reference)
        if held is not None and held[0] == version:
            return held[1]
        placements = resolve_placements(reference, dynamic_prefix)  # problems are not kept
        self._held[reference] = (version, placements)
        return placements

    def forget(self, name: str) -> None:
        """The DynamicPrefix ``name`` is gone."""
        for reference in [r for r in self._held if r.dynamic_prefix == name]:
            del self._held[reference]
        self._specs.pop(name, None)
