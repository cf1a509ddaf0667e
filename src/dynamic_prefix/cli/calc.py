"""`dynamic-prefix calc`: what the operator would compute for a prefix, before deploying."""

from __future__ import annotations

import argparse
import sys
from ipaddress import IPv6Address
from typing import Any

from dynamic_prefix.addressing import AddressError, parse_prefix
from dynamic_prefix.cli.manifests import ManifestError, load_documents
from dynamic_prefix.cli.output import FORMATS, render_data, render_table
from dynamic_prefix.model import api
from dynamic_prefix.model.compute import (
    SUFFIX_BITS,
    Computed,
    compute,
    dhcpv6_pool_outside,
    odhcpd_host_id_bits,
)
from dynamic_prefix.model.spec import (
    InvalidSpec,
    StaticSpec,
    validate_dynamic_prefix,
)

EXIT_INVALID = 2


def add_parser(subparsers: Any) -> None:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "calc",
        help="compute the address ranges and subnets of a DynamicPrefix for a prefix",
        description="Compute the address ranges (with their exact CIDRs) and subnets that "
        "the operator would write for a DynamicPrefix, given a prefix. Nothing is contacted: "
        "use it to check a spec before deploying it.",
    )
    parser.add_argument(
        "-f", "--filename", required=True, help="DynamicPrefix manifest (YAML; - for stdin)"
    )
    parser.add_argument(
        "--prefix",
        help="the prefix to compute for, e.g. 2001:db8:abcd:1::/64 "
        "(default: the spec's static prefix)",
    )
    parser.add_argument("--name", help="which DynamicPrefix of the file, when it holds several")
    parser.add_argument("-o", "--output", choices=FORMATS, default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Compute and print; problems go to stderr with exit code 2."""
    try:
        obj = _select(load_documents(args.filename), args.name)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    name = obj.get("metadata", {}).get("name", "<unnamed>")
    spec = validate_dynamic_prefix(obj)
    if isinstance(spec, InvalidSpec):
        print(f"error: DynamicPrefix {name} is invalid:", file=sys.stderr)
        for problem in spec.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    if args.prefix is not None:
        try:
            prefix = parse_prefix(args.prefix)
        except AddressError as error:
            print(f"error: --prefix: {error}", file=sys.stderr)
            return EXIT_INVALID
    elif isinstance(spec.acquisition.primary, StaticSpec):
        prefix = spec.acquisition.primary.prefix
    else:
        print("error: --prefix is required: the spec has no static prefix", file=sys.stderr)
        return EXIT_INVALID
    if not spec.acquisition.accepts(prefix):
        print(f"error: --prefix: {prefix} would be refused by the prefix filter", file=sys.stderr)
        return EXIT_INVALID
    computed = compute(spec, prefix)
    if computed.problems:
        print(f"error: DynamicPrefix {name} does not fit {prefix}:", file=sys.stderr)
        for problem in computed.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    for note in computed.calico_notes():
        print(f"warning: {note}", file=sys.stderr)
    if args.output == "table":
        sys.stdout.write(format_table(name, computed))
    else:
        sys.stdout.write(render_data(computed.to_status(), args.output))
    return 0


def _select(documents: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    candidates = [doc for doc in documents if doc.get("kind") == api.KIND]
    if name is not None:
        candidates = [doc for doc in candidates if doc.get("metadata", {}).get("name") == name]
    if not candidates:
        wanted = f" named {name!r}" if name else ""
        raise ManifestError(f"no {api.KIND}{wanted} in the file")
    if len(candidates) > 1:
        names = ", ".join(str(doc.get("metadata", {}).get("name")) for doc in candidates)
        raise ManifestError(f"the file holds several {api.KIND}s ({names}): choose with --name")
    return candidates[0]


def _count(size: int) -> str:
    exponent = size.bit_length() - 1
    return f"2^{exponent}" if size == 1 << exponent and exponent >= 16 else f"{size:,}"


def format_table(name: str, computed: Computed) -> str:
    """The human-readable report of a computation."""
    parts = [f"DynamicPrefix {name} with prefix {computed.prefix}\n"]
    if computed.address_ranges:
        rows = [
            [r.name, str(r.start), str(r.end), _count(r.range.size), " ".join(
                str(c) for c in r.range.cidrs())]
            for r in computed.address_ranges
        ]  # fmt: skip
        parts.append("\nADDRESS RANGES\n")
        parts.append(render_table(["NAME", "START", "END", "ADDRESSES", "CIDRS"], rows))
    if computed.subnets:
        rows = [[s.name, str(s.cidr), _count(s.cidr.num_addresses)] for s in computed.subnets]
        parts.append("\nSUBNETS\n")
        parts.append(render_table(["NAME", "CIDR", "ADDRESSES"], rows))
    if not computed.address_ranges and not computed.subnets:
        parts.append("(no address ranges or subnets in the spec)\n")
    if computed.address_ranges and computed.prefix.prefixlen == SUFFIX_BITS:
        parts.append(_router_settings(computed))
    return "".join(parts)


def _router_settings(computed: Computed) -> str:
    """What the router must be set to so that it leaves the ranges free."""
    lines = ["", "ROUTER SETTINGS (the router must not hand out addresses in the ranges above)"]
    span = dhcpv6_pool_outside(computed.address_ranges)
    if span is None:
        lines.append("  UniFi:   the ranges cover the whole /64: no room is left for DHCPv6")
    else:
        start, end = (str(IPv6Address(value)) for value in span)
        lines += [
            "  UniFi:   Settings > Networks > (this network) > IPv6 > DHCPv6 range:",
            f"             start {start}, end {end}",
        ]
    bits = odhcpd_host_id_bits(computed.address_ranges)
    lines += [
        "  OpenWRT: odhcpd has no DHCPv6 pool bounds (pool_start/pool_end are not its",
        "           options); lease host IDs stay below 2^dhcpv6_hostidlength.",
    ]
    if bits is None:
        lines += [
            "           A range starts below ::1000, inside odhcpd's smallest host-ID space:",
            "           move it up, or turn stateful DHCPv6 off (option dhcpv6 'disabled').",
        ]
    else:
        lines += [
            "           /etc/config/dhcp, LAN section:",
            f"             option dhcpv6_hostidlength '12'   (the default; up to {bits} is clear)",
        ]
    share = sum(r.range.size for r in computed.address_ranges) / (1 << SUFFIX_BITS)
    lines += [
        "  SLAAC:   hosts choose their own interface IDs anywhere in the /64: a SLAAC",
        f"           address falls inside the ranges with odds {_share(share)}, harmless",
        "           unless it equals an address a service was given (negligible odds).",
        "           Give no device a static address inside the ranges.",
    ]
    return "\n".join(lines) + "\n"


def _share(fraction: float) -> str:
    if fraction >= 0.5:
        return f"of {fraction:.0%}"
    return f"of 1 in {round(1 / fraction):,}" if fraction * 2**20 >= 1 else "below 1 in a million"
