"""The operator: wiring of sources, status and pool sync, kopf handlers, the run loop.

`controller.Controller` holds the logic and is driven by watch events (from kopf in
production, directly in tests); `handlers` registers it with kopf; nothing below this
layer knows it exists.
"""
