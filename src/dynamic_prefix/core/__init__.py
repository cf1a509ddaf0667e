"""The pure core: address arithmetic, the DynamicPrefix API model, codecs and state machines.

Nothing here opens a socket, reads a clock, touches the filesystem or talks to Kubernetes:
inputs (bytes, objects, the current time) come in as arguments and results go out as values.
"""
