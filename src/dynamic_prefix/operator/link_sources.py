"""Factories of the sources that listen on a node's link (RA, netlink, DHCPv6-PD)."""

from __future__ import annotations

from dynamic_prefix.core.spec import Acquisition, PrefixSourceSpec, source_name
from dynamic_prefix.receivers.base import PrefixSource, SourceError


def build_link_source(name: str, spec: PrefixSourceSpec, acquisition: Acquisition) -> PrefixSource:
    """The receiver for a link source; `SourceError` if this build has none for it."""
    raise SourceError(f"source {source_name(spec)} is not available in this build")
