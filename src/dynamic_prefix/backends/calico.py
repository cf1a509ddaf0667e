"""Calico IPPool (projectcalico.org/v3): a pool per CIDR, because spec.cidr cannot change.

A real Calico refuses edits of an IPPool's cidr, so the user's annotated pool is a
template that the operator never edits. For every CIDR the DynamicPrefix calls for, the
operator creates a pool with the template's settings and that CIDR, named after both,
labelled with the template's name. The pool of the current prefix is enabled; pools of
history prefixes are set ``disabled: true`` so no new addresses come from them while
existing ones keep working; a pool whose prefix left the history is deleted. The
template's own ``disabled`` applies to the template only: set it to keep the template's
placeholder CIDR unused. Releasing the template deletes every pool made from it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Any

from dynamic_prefix.backends.base import Action, Create, Delete, Patch, Placement, Plan
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.compute import CALICO_IPV6_BLOCK_SIZE

MAX_NAME = 253


MAX_LABEL_VALUE = 63


def generated_name(template: str, cidr: IPv6Network) -> str:
    """``<template>-<cidr with : and / as ->``, a valid object name that shows the CIDR."""
    suffix = str(cidr).replace(":", "-").replace("/", "-")
    head = template[: MAX_NAME - len(suffix) - 1].rstrip(".-")
    return f"{head}-{suffix}"


def template_label(template: str) -> str:
    """The template's name as a label value (at most 63 characters; long names hashed)."""
    if len(template) <= MAX_LABEL_VALUE:
        return template
    digest = hashlib.sha256(template.encode()).hexdigest()[:16]
    return f"{template[: MAX_LABEL_VALUE - 17].rstrip('.-_')}-{digest}"


@dataclass(frozen=True, slots=True)
class CalicoBackend:
    """Generates pools from an annotated template pool."""

    name: str = "calico-ip-pool"
    group: str = "projectcalico.org"
    plural: str = "ippools"
    kind: str = "IPPool"
    versions: tuple[str, ...] = ("v3",)

    def plan(
        self,
        resource: Resource,
        pool: Mapping[str, Any],
        placements: Sequence[Placement] | None,
        *,
        generated: Sequence[Mapping[str, Any]] = (),
        retired: Sequence[Placement] = (),
    ) -> Plan:
        """Create, update and delete generated pools; never touch the template.

        ``None`` releases (deletes every generated pool); an empty sequence (no prefix
        known yet) changes nothing.
        """
        if placements is not None and not placements:
            return Plan()
        template_name = pool["metadata"]["name"]
        template_spec = pool.get("spec") or {}
        template_cidr = _network(template_spec.get("cidr"))
        desired: dict[str, dict[str, Any]] = {}
        block_size = template_spec.get("blockSize", CALICO_IPV6_BLOCK_SIZE)
        too_small: list[str] = []
        for placement in placements or ():
            for cidr in placement.cidrs():
                if cidr == template_cidr:
                    continue  # the template itself serves it
                if isinstance(block_size, int) and cidr.prefixlen > block_size:
                    too_small.append(str(cidr))
                    continue
                spec = copy.deepcopy(dict(template_spec))
                spec["cidr"] = str(cidr)
                spec["disabled"] = not placement.current
                name = generated_name(template_name, cidr)
                desired.setdefault(name, self._object(resource, name, template_name, pool, spec))

        # Order matters to whoever allocates meanwhile: new pools are created and the
        # current one enabled before an old one is disabled or deleted, so that there is
        # never a moment with nothing allocatable.
        creates: list[Action] = []
        enables: list[Action] = []
        replaces: list[Action] = []
        disables: list[Action] = []
        deletes: list[Action] = []
        existing = {g["metadata"]["name"]: g for g in generated}
        for name, existing_pool in sorted(existing.items()):
            wanted = desired.get(name)
            if wanted is None:
                deletes.append(Delete(resource, name, None))
            elif _network((existing_pool.get("spec") or {}).get("cidr")) != _network(
                wanted["spec"]["cidr"]
            ):
                # someone edited the cidr of a generated pool: make it again
                replaces += [Delete(resource, name, None), Create(resource, wanted)]
            elif existing_pool.get("spec") != wanted["spec"]:
                observed_spec = existing_pool.get("spec") or {}
                # settings the template no longer has are removed (null in a merge patch)
                spec_patch = {key: None for key in observed_spec if key not in wanted["spec"]}
                spec_patch.update({k: v for k, v in wanted["spec"].items() if k != "cidr"})
                body = {
                    "metadata": {
                        "resourceVersion": existing_pool["metadata"].get("resourceVersion")
                    },
                    "spec": spec_patch,
                }
                bucket = disables if wanted["spec"].get("disabled") else enables
                bucket.append(Patch(resource, name, None, body))
        for name, wanted in desired.items():
            if name not in existing:
                creates.append(Create(resource, wanted))
        actions = creates + enables + replaces + disables + deletes
        if too_small:
            refused = (
                f"{len(too_small)} CIDR(s) of the range are smaller than the template's "
                f"blockSize /{block_size} ({', '.join(too_small[:4])}"
                f"{', ...' if len(too_small) > 4 else ''}), which Calico refuses: no pool is "
                "made for them; align the range to the block size, lower blockSize in the "
                "template, or use the range with Cilium or MetalLB"
            )
            return Plan(tuple(actions), unsupported=(refused,))
        return Plan(tuple(actions))

    @staticmethod
    def _object(
        resource: Resource,
        name: str,
        template_name: str,
        template: Mapping[str, Any],
        spec: dict[str, Any],
    ) -> dict[str, Any]:
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[api.LABEL_GENERATED_FROM] = template_label(template_name)
        return {
            "apiVersion": resource.api_version,
            "kind": "IPPool",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    api.ANNOTATION_GENERATED_FROM: template_name,
                    f"{api.GROUP}/note": "made by the dynamic prefix operator from the IPPool "
                    "named in generated-from; edit that pool instead",
                },
            },
            "spec": spec,
        }


def _network(text: object) -> IPv6Network | None:
    try:
        network = IPv6Network(str(text), strict=False)
    except ValueError:
        return None
    return network


IP_POOL = CalicoBackend()
