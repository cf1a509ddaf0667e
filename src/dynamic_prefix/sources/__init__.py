"""Prefix sources: thin asyncio shells that move bytes between the link and the protocols.

Every source implements `dynamic_prefix.sources.base.PrefixSource`: ``run(report)``
until cancelled, calling ``report`` with a new `SourceState` on every change, and
``state`` for the latest one. Sources never touch Kubernetes.
"""
