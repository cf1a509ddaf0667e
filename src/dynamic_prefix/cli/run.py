"""`dynamic-prefix run`: the operator itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

from dynamic_prefix.kube.config import ConfigError, load_config
from dynamic_prefix.kube.leader import LeaseSettings
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.observability import Endpoint
from dynamic_prefix.operator.runtime import (
    DEFAULT_HEALTH_PORT,
    DEFAULT_METRICS_PORT,
    Endpoints,
    StartupError,
    run_operator,
)


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
    endpoints = parser.add_argument_group(
        "endpoints",
        "Probes (/healthz, /readyz) in plain HTTP; /metrics over HTTPS for bearer tokens "
        "the API server allows to get /metrics (TokenReview, SubjectAccessReview).",
    )
    endpoints.add_argument(
        "--health-host", default="127.0.0.1", help="address of the probes (default 127.0.0.1)"
    )
    endpoints.add_argument(
        "--health-port",
        type=int,
        default=DEFAULT_HEALTH_PORT,
        help=f"port of the probes (0: none; default {DEFAULT_HEALTH_PORT})",
    )
    endpoints.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of /metrics (default 127.0.0.1; the Deployment gives the pod IP)",
    )
    endpoints.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help=f"port of /metrics (0: none; default {DEFAULT_METRICS_PORT})",
    )
    endpoints.add_argument(
        "--metrics-insecure",
        action="store_true",
        help="serve /metrics in plain HTTP without authentication (local use only); on the "
        "probes' port if it is the same",
    )
    endpoints.add_argument(
        "--metrics-cert-dir",
        type=Path,
        help="folder with tls.crt and tls.key for /metrics (default: a self-signed "
        "certificate made at start)",
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
        endpoints = Endpoints(
            health=Endpoint(args.health_host, args.health_port),
            metrics=Endpoint(args.metrics_host, args.metrics_port),
            metrics_insecure=args.metrics_insecure,
            metrics_cert_dir=args.metrics_cert_dir,
        )
        asyncio.run(run_operator(config, endpoints=endpoints, lease=lease, identity=args.identity))
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
