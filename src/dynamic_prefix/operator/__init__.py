"""The operator: the controller and its parts, the source manager, the watches, the run loop.

`controller.Controller` holds the logic and is driven by watch events (from
`runtime.run_operator`'s informers in production, directly in tests); nothing below this
layer knows it exists.
"""
