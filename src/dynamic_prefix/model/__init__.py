"""The domain model, pure: the DynamicPrefix API and its schema, spec validation, the
desired pool contents (`compute`) and the status rules (`status`).

Nothing here opens a socket, reads a clock or talks to Kubernetes: inputs (objects, the
current time) come in as arguments and results go out as values. It never imports
`dynamic_prefix.protocols`; both build on `dynamic_prefix.addressing`.
"""
