"""Every backend the operator knows, in one place."""

from __future__ import annotations

from dynamic_prefix.backends.base import PoolBackend
from dynamic_prefix.backends.calico import IP_POOL
from dynamic_prefix.backends.calico_classic import CLASSIC_IP_POOL
from dynamic_prefix.backends.cilium import CIDR_GROUP, LB_IP_POOL
from dynamic_prefix.backends.metallb import IP_ADDRESS_POOL

BACKENDS: tuple[PoolBackend, ...] = (
    LB_IP_POOL,
    CIDR_GROUP,
    IP_ADDRESS_POOL,
    IP_POOL,
    CLASSIC_IP_POOL,
)


def backend_for(group: str, plural: str) -> PoolBackend | None:
    """The backend of a pool kind, by API group and plural name."""
    return next((b for b in BACKENDS if b.group == group and b.plural == plural), None)
