"""Dynamic Prefix Operator: follows a dynamic IPv6 prefix and rewrites load-balancer pools.

Layers import in one direction (checked by import-linter, see pyproject.toml):
cli -> operator -> backends | sources -> kube | link -> model | protocols -> addressing.
`model`, `protocols` and `addressing` are pure; only `link` talks netlink, ioctl or /proc.
"""

__version__ = "0.1.0"
