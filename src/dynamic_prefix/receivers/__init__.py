"""Prefix sources: thin asyncio shells that move bytes between the link and the pure core.

Every source implements `dynamic_prefix.receivers.base.PrefixSource`: ``run(report)``
until cancelled, calling ``report`` with a new `SourceState` on every change, and
``state`` for the latest one. Sources never touch Kubernetes.
"""
