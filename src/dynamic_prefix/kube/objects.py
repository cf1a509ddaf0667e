"""Comparing versions of one Kubernetes object, as the watch and our writes bring them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resource_version(body: Mapping[str, Any]) -> str:
    """The object's resourceVersion ("" if it has none)."""
    return str((body.get("metadata") or {}).get("resourceVersion", ""))


def is_older(candidate: Mapping[str, Any], known: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is an older version of the object than ``known``.

    Watch events can arrive after the answer to our own write, carrying an older
    version; keeping the newest stops a pool from being rendered from a stale status.
    resourceVersions are opaque by contract but etcd revisions in practice: they are
    compared as integers when both are, and otherwise the candidate is taken.
    """
    if known is None:
        return False
    old, new = resource_version(known), resource_version(candidate)
    return old.isdigit() and new.isdigit() and int(new) < int(old)


def same_version(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether both are the same version of an object (equal, non-empty resourceVersions)."""
    version = resource_version(one)
    return bool(version) and version == resource_version(other)
