"""The `dynamic-prefix` command: one console script, one module per subcommand.

Subcommands parse arguments, call into the layers below and format results for people
(tables) or programs (``-o json|yaml``); exit code 2 means the input was invalid.
"""
