"""`dynamic-prefix demo`: the product on one machine, with nothing but this checkout.

Starts a real kube-apiserver + etcd on loopback, installs the DynamicPrefix CRD, applies
the user guide's example with a static prefix in place of the router, and shows what is
computed from it. Everything started is stopped again on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dynamic_prefix.cli.calc import format_table
from dynamic_prefix.cli.crd import crd_manifest_text
from dynamic_prefix.core import api
from dynamic_prefix.core.addressing import parse_prefix
from dynamic_prefix.core.compute import compute
from dynamic_prefix.core.spec import Invalid, validate_dynamic_prefix
from dynamic_prefix.testbed.controlplane import ControlPlane

EXAMPLE = Path(__file__).parents[1] / "examples" / "home-prefix.yaml"
DEMO_PREFIX = "2001:db8:abcd:1::/64"


def add_parser(subparsers: Any) -> None:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the local demo on a throw-away control plane",
        description="Start a local kube-apiserver + etcd, install the CRD, apply the user "
        "guide's example with a static prefix and show the computed ranges. Needs the "
        "binaries that scripts/setup.sh builds.",
    )
    parser.add_argument("--prefix", default=DEMO_PREFIX, help="the static prefix to use")
    parser.set_defaults(handler=run)


class _Narrator:
    """Prints steps with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 0 when every step worked."""
    prefix = parse_prefix(args.prefix)
    narrator = _Narrator()
    narrator.say("starting a local control plane (etcd + kube-apiserver)")
    try:
        with ControlPlane() as plane:
            narrator.say(f"control plane ready at {plane.server}")
            plane.kubectl("apply", "-f", "-", input=crd_manifest_text())
            plane.kubectl("wait", "--for=condition=Established", f"crd/{api.CRD_NAME}")
            narrator.say(f"CRD {api.CRD_NAME} installed")

            obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
            obj["spec"]["acquisition"] = {"static": {"prefix": str(prefix)}}
            plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
            narrator.say(
                f"applied the user guide's example with a static prefix {prefix}:\n"
                + _indent(yaml.safe_dump(obj, sort_keys=False))
            )
            print(plane.kubectl("get", "dynamicprefixes").stdout, flush=True)

            stored = json.loads(
                plane.kubectl("get", "dynamicprefix", obj["metadata"]["name"], "-o", "json").stdout
            )
            spec = validate_dynamic_prefix(stored)
            if isinstance(spec, Invalid):
                narrator.say(f"the stored object is invalid: {spec}")
                return 1
            computed = compute(spec, prefix)
            narrator.say("computed from the object as stored by the API server:")
            print(format_table(stored["metadata"]["name"], computed), flush=True)
            narrator.say("stopping the control plane")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    narrator.say("done")
    return 0


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())
