"""Dynamic Prefix Operator: follows a dynamic IPv6 prefix and rewrites load-balancer pools.

Layers import in one direction (checked by import-linter, see pyproject.toml):
cli -> operator -> backends/receivers -> kube -> core; the core is pure.
"""

__version__ = "0.1.0"
