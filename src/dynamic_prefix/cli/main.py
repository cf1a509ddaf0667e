"""Entry point of the `dynamic-prefix` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dynamic_prefix import __version__
from dynamic_prefix.cli import calc, crd, doctor, run, status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dynamic-prefix",
        description="Follow a dynamic IPv6 prefix and keep Kubernetes load-balancer pools "
        "(Cilium, MetalLB, Calico) in step with it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    calc.add_parser(subparsers)
    crd.add_parser(subparsers)
    run.add_parser(subparsers)
    status.add_parser(subparsers)
    doctor.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; its return value is the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
