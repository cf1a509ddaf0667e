"""`dynamic-prefix run`: the operator itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from dynamic_prefix.kube.config import ConfigError, load_config
from dynamic_prefix.kube.leader import LeaseSettings
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.runtime import StartupError, run_operator


def add_parser(subparsers: Any) -> None:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the operator",
        description="Run the operator: follow the prefix of every DynamicPrefix and keep "
        "the annotated pools in step. Uses --kubeconfig, $KUBECONFIG, or the pod's "
        "service account.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text, or one JSON object per line (default text); either way each line about "
        "a DynamicPrefix names it",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port of /metrics, /healthz and /readyz (0: none; default 8080)",
    )
    parser.add_argument(
        "--metrics-host", default="", help="address to listen on (default: every address)"
    )
    election = parser.add_argument_group(
        "leader election", "Several replicas may run; one holds a Lease and does the work."
    )
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="write without holding the Lease (only ever run one replica then)",
    )
    election.add_argument("--lease-name", default="dynamic-prefix-operator")
    election.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    election.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the Lease (default: $POD_NAME, else host-pid)",
    )
    election.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS")
    election.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    election.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or Ctrl-C."""
    try:
        config = load_config(args.kubeconfig)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logs.configure(args.log_format, verbose=args.verbose)
    lease = None
    if args.leader_election:
        try:
            lease = LeaseSettings(
                namespace=args.lease_namespace,
                name=args.lease_name,
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            )
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        asyncio.run(
            run_operator(
                config,
                metrics_host=args.metrics_host,
                metrics_port=args.metrics_port,
                lease=lease,
                identity=args.identity,
            )
        )
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
