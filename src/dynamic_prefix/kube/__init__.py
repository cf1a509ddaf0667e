"""Talking to the Kubernetes API: credentials, a small async client, errors mapped once.

Everything above this layer names resources with `Resource` and catches `ApiError`
subclasses; nothing above it builds URLs or reads HTTP status codes.
"""
