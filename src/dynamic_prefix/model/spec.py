"""DynamicPrefix objects parsed once into typed, validated values.

`validate_dynamic_prefix` checks an object (from the API server or a file) against the
CRD schema of `dynamic_prefix.model.api`, fills in its defaults, then applies the rules a
schema cannot express: at least one source, addresses that parse, ranges and subnets
that fit the prefix they will be computed from. The answer is either a `DynamicPrefixSpec`
or an `InvalidSpec` listing every problem with its field path; never a partial result.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Any, Final

from dynamic_prefix.addressing import (
    AddressClass,
    AddressError,
    carve_subnet,
    classify,
    combine,
    parse_address,
    parse_prefix,
    parse_suffix,
)
from dynamic_prefix.model import api, schema
from dynamic_prefix.model.schema import Problem

SLAAC_PREFIX_LENGTH = 64  # RFC 4862 section 5.5.3 with Ethernet interface identifiers


class TransitionMode(enum.StrEnum):
    """How addresses of a previous prefix are kept after a change."""

    SIMPLE = "simple"
    HA = "ha"


@dataclass(frozen=True, slots=True)
class RouterAdvertisementSpec:
    """Listen to Router Advertisements on ``interface`` (None: the default-route interface)."""

    interface: str | None
    trusted_routers: frozenset[IPv6Address]


@dataclass(frozen=True, slots=True)
class NetlinkSpec:
    """Follow the kernel's SLAAC addresses on ``interface``."""

    interface: str


@dataclass(frozen=True, slots=True)
class Dhcpv6PdSpec:
    """Be a DHCPv6 prefix-delegation client on ``interface``."""

    interface: str
    requested_prefix_length: int
    length_given: bool = True
    """Whether requestedPrefixLength was written: when not, the length the server
    delegates is known only at run time, and the spec is checked against it then."""


@dataclass(frozen=True, slots=True)
class StaticSpec:
    """A prefix fixed in the spec."""

    prefix: IPv6Network


PrefixSourceSpec = StaticSpec | Dhcpv6PdSpec | RouterAdvertisementSpec | NetlinkSpec


def source_name(source: PrefixSourceSpec) -> str:
    """The name a source has in status.prefixSource, metrics and events."""
    match source:
        case StaticSpec():
            return api.SOURCE_STATIC
        case Dhcpv6PdSpec():
            return api.SOURCE_DHCPV6_PD
        case RouterAdvertisementSpec():
            return api.SOURCE_ROUTER_ADVERTISEMENT
        case NetlinkSpec():
            return api.SOURCE_NETLINK


def expected_prefix_length(source: PrefixSourceSpec) -> int:
    """The length of the prefix a source will deliver, as far as it can be known ahead."""
    match source:
        case StaticSpec(prefix=prefix):
            return prefix.prefixlen
        case Dhcpv6PdSpec(requested_prefix_length=length):
            return length
        case RouterAdvertisementSpec() | NetlinkSpec():
            return SLAAC_PREFIX_LENGTH


@dataclass(frozen=True, slots=True)
class Acquisition:
    """The enabled prefix sources, highest priority first, and the prefix filter."""

    sources: tuple[PrefixSourceSpec, ...]
    allow_unique_local: bool
    min_length: int | None = None
    max_length: int | None = None

    @property
    def primary(self) -> PrefixSourceSpec:
        """The source whose prefix wins while it has one."""
        return self.sources[0]

    def accepts(self, prefix: IPv6Network) -> bool:
        """Whether the prefix filter lets ``prefix`` be used at all."""
        return self.refusal(prefix) is None

    def refusal(self, prefix: IPv6Network) -> str | None:
        """Why the prefix filter refuses ``prefix``, in words; None if it accepts it."""
        address_class = classify(prefix)
        if address_class is AddressClass.UNIQUE_LOCAL and not self.allow_unique_local:
            return (f"{prefix} is unique local; set prefixFilter.requireGlobalUnicast: false "
                    "to accept it")  # fmt: skip
        if address_class not in (AddressClass.GLOBAL_UNICAST, AddressClass.UNIQUE_LOCAL):
            return f"{prefix} is {address_class.value}, never usable"
        if self.min_length is not None and prefix.prefixlen < self.min_length:
            return f"{prefix} is shorter than prefixFilter.minPrefixLength /{self.min_length}"
        if self.max_length is not None and prefix.prefixlen > self.max_length:
            return f"{prefix} is longer than prefixFilter.maxPrefixLength /{self.max_length}"
        return None


@dataclass(frozen=True, slots=True)
class AddressRangeSpec:
    """A range inside the prefix, as host-part suffixes (and as the user wrote them)."""

    name: str
    start_suffix: int
    end_suffix: int
    start: str
    end: str


class Announce(enum.StrEnum):
    """What a BGP speaker that can aggregate (MetalLB) announces for a subnet."""

    ADDRESSES = "addresses"  # each LoadBalancer address, as a /128: nothing unused attracted
    SUBNET = "subnet"  # one route for the whole subnet


@dataclass(frozen=True, slots=True)
class BgpSpec:
    """BGP announcement settings of a subnet."""

    advertise: bool
    community: str | None
    announce: Announce = Announce.ADDRESSES


@dataclass(frozen=True, slots=True)
class SubnetSpec:
    """The ``offset``-th /``prefix_length`` subnet of the prefix."""

    name: str
    offset: int
    prefix_length: int
    bgp: BgpSpec | None


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """How long previous prefixes stay in the pools."""

    mode: TransitionMode
    max_prefix_history: int


@dataclass(frozen=True, slots=True)
class DynamicPrefixSpec:
    """A validated DynamicPrefix spec."""

    acquisition: Acquisition
    address_ranges: tuple[AddressRangeSpec, ...]
    subnets: tuple[SubnetSpec, ...]
    transition: TransitionSpec


@dataclass(frozen=True, slots=True)
class InvalidSpec:
    """Why a DynamicPrefix cannot be used; nothing may be written on its behalf."""

    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)


_SPEC_SCHEMA: Final = api.spec_schema()
"""Built once: the schema never changes, and checking and defaulting only read it (it
took 30 µs to build, twice per check)."""
SPECS_REMEMBERED = 256  # distinct specs; a cluster has one per DynamicPrefix and version


_validated: dict[str, DynamicPrefixSpec | InvalidSpec] = {}


def validate_dynamic_prefix(obj: Mapping[str, Any]) -> DynamicPrefixSpec | InvalidSpec:
    """The typed spec of a DynamicPrefix object, or every problem found in it.

    Remembered by the text of what it reads (apiVersion, kind, spec): each watch event
    and each step of a change asks again about the same spec, and the schema check costs
    about 70 µs. The result is immutable, so sharing it is safe."""
    if not isinstance(obj, Mapping):
        return InvalidSpec((Problem("", "a DynamicPrefix must be a mapping"),))
    if "spec" not in obj:
        return _validate(obj)
    try:
        key = json.dumps([obj.get("apiVersion"), obj.get("kind"), obj["spec"]], sort_keys=True)
    except (TypeError, ValueError):  # not JSON (a caller's odd value): checked, not remembered
        return _validate(obj)
    found = _validated.get(key)
    if found is None:
        found = _validate(obj)
        if len(_validated) >= SPECS_REMEMBERED:
            _validated.clear()
        _validated[key] = found
    return found


def _validate(obj: Mapping[str, Any]) -> DynamicPrefixSpec | InvalidSpec:
    """The check itself: schema, defaults, then the typed spec."""
    problems: list[Problem] = []
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is not None and api_version != api.API_VERSION:
        problems.append(Problem("apiVersion", f"must be {api.API_VERSION}, got {api_version!r}"))
    if kind is not None and kind != api.KIND:
        problems.append(Problem("kind", f"must be {api.KIND}, got {kind!r}"))
    if "spec" not in obj:
        problems.append(Problem("spec", "is required"))
    else:
        problems += schema.check(_SPEC_SCHEMA, obj["spec"], "spec")
    if problems:
        return InvalidSpec(tuple(problems))
    spec = schema.with_defaults(_SPEC_SCHEMA, obj["spec"])
    return _parse_spec(spec)


def _parse_spec(spec: dict[str, Any]) -> DynamicPrefixSpec | InvalidSpec:
    problems: list[Problem] = []
    acquisition = _parse_acquisition(spec["acquisition"], problems)
    ranges = tuple(
        _parse_range(item, f"spec.addressRanges[{index}]", problems)
        for index, item in enumerate(spec.get("addressRanges", []))
    )
    subnets = tuple(
        _parse_subnet(item) for item in spec.get("subnets", [])
    )  # fmt: skip
    transition_spec = spec.get("transition", {})
    transition = TransitionSpec(
        mode=TransitionMode(transition_spec.get("mode", TransitionMode.SIMPLE)),
        max_prefix_history=transition_spec.get("maxPrefixHistory", api.DEFAULT_MAX_PREFIX_HISTORY),
    )
    if acquisition is not None:
        _check_fit(acquisition, ranges, subnets, problems)
    if problems or acquisition is None:
        return InvalidSpec(tuple(problems))
    return DynamicPrefixSpec(
        acquisition=acquisition,
        address_ranges=tuple(r for r in ranges if r is not None),
        subnets=subnets,
        transition=transition,
    )


def _parse_acquisition(spec: dict[str, Any], problems: list[Problem]) -> Acquisition | None:
    path = "spec.acquisition"
    sources: list[PrefixSourceSpec] = []
    if (static := spec.get("static")) is not None:
        try:
            sources.append(StaticSpec(parse_prefix(static["prefix"])))
        except AddressError as error:
            problems.append(Problem(f"{path}.static.prefix", str(error)))
    if (pd := spec.get("dhcpv6pd")) is not None:
        length = pd.get("requestedPrefixLength")
        sources.append(Dhcpv6PdSpec(
            pd["interface"],
            api.DEFAULT_REQUESTED_PREFIX_LENGTH if length is None else length,
            length_given=length is not None,
        ))  # fmt: skip
    if (ra := spec.get("routerAdvertisement")) is not None and ra["enabled"]:
        trusted = set()
        for index, text in enumerate(ra.get("trustedRouters", [])):
            field = f"{path}.routerAdvertisement.trustedRouters[{index}]"
            try:
                router = parse_address(text)
            except AddressError as error:
                problems.append(Problem(field, str(error)))
                continue
            if classify(router) is not AddressClass.LINK_LOCAL:
                problems.append(
                    Problem(field, f"{router} is not link-local; routers send RAs from fe80::/10")
                )
            trusted.add(router)
        sources.append(RouterAdvertisementSpec(ra.get("interface"), frozenset(trusted)))
    if (netlink := spec.get("netlink")) is not None:
        sources.append(NetlinkSpec(netlink["interface"]))
    prefix_filter = spec.get("prefixFilter", {})
    allow_ula = not prefix_filter.get("requireGlobalUnicast", True)
    min_length, max_length = prefix_filter.get("minPrefixLength"), prefix_filter.get(
        "maxPrefixLength")  # fmt: skip
    if min_length is not None and max_length is not None and min_length > max_length:
        problems.append(Problem(f"{path}.prefixFilter", f"minPrefixLength {min_length} is "
                                f"greater than maxPrefixLength {max_length}"))  # fmt: skip
    if not sources:
        if not problems:
            problems.append(
                Problem(
                    path,
                    "no prefix source is enabled: set one of routerAdvertisement, dhcpv6pd, "
                    "netlink or static",
                )
            )
        return None
    acquisition = Acquisition(
        tuple(sources), allow_unique_local=allow_ula, min_length=min_length, max_length=max_length
    )
    for source in acquisition.sources:
        if isinstance(source, StaticSpec) and (why := acquisition.refusal(source.prefix)):
            usable = classify(source.prefix) is AddressClass.GLOBAL_UNICAST or (
                allow_ula and classify(source.prefix) is AddressClass.UNIQUE_LOCAL
            )
            if usable:  # refused for its length
                problems.append(Problem(f"{path}.static.prefix", why))
                continue
            problems.append(
                Problem(
                    f"{path}.static.prefix",
                    f"{source.prefix} is {classify(source.prefix).value}; "
                    + (
                        "only global unicast or unique local prefixes can be used"
                        if allow_ula
                        else "only global unicast prefixes are accepted "
                        "(set prefixFilter.requireGlobalUnicast: false to allow ULA)"
                    ),
                )
            )
    return acquisition


def _parse_range(
    item: dict[str, Any], path: str, problems: list[Problem]
) -> AddressRangeSpec | None:
    suffixes: dict[str, int] = {}
    for field in ("start", "end"):
        try:
            suffixes[field] = parse_suffix(item[field])
        except AddressError as error:
            problems.append(Problem(f"{path}.{field}", str(error)))
    if len(suffixes) < 2:
        return None
    if suffixes["start"] > suffixes["end"]:
        problems.append(Problem(path, f"start {item['start']} is after end {item['end']}"))
        return None
    return AddressRangeSpec(
        item["name"], suffixes["start"], suffixes["end"], item["start"], item["end"]
    )


def _parse_subnet(item: dict[str, Any]) -> SubnetSpec:
    bgp = item.get("bgp")
    # a community outside 16:16 bits is said by BGPAdvertisementReady, not made a spec
    # error: the Go operator's CRD admits it, and the rest of the spec stays served
    community = None if bgp is None else bgp.get("community")
    return SubnetSpec(
        name=item["name"],
        offset=item["offset"],
        prefix_length=item["prefixLength"],
        bgp=None
        if bgp is None
        else BgpSpec(bgp["advertise"], community, Announce(bgp.get("announce", "addresses"))),
    )


def _check_fit(
    acquisition: Acquisition,
    ranges: tuple[AddressRangeSpec | None, ...],
    subnets: tuple[SubnetSpec, ...],
    problems: list[Problem],
) -> None:
    """Ranges and subnets must fit the prefix the primary source will deliver.

    A static prefix is checked as it is; for other sources the prefix is not known yet,
    so the check uses a stand-in of the expected length (the /64 of SLAAC, or the
    requested delegation length when one is written). A delegation of unwritten length,
    and fallback sources, are checked when their prefix comes (`compute`, Degraded).
    """
    primary = acquisition.primary
    if isinstance(primary, Dhcpv6PdSpec) and not primary.length_given:
        return  # any delegation length may come: checked against it when it does
    if isinstance(primary, StaticSpec):
        prefix, described = primary.prefix, str(primary.prefix)
    else:
        length = expected_prefix_length(primary)
        prefix = IPv6Network((0x2000 << 112, length))
        described = f"the /{length} that {source_name(primary)} delivers"
    for index, address_range in enumerate(ranges):
        if address_range is None:
            continue
        for field, suffix, text in (
            ("start", address_range.start_suffix, address_range.start),
            ("end", address_range.end_suffix, address_range.end),
        ):
            try:
                combine(prefix, suffix)
            except AddressError:
                problems.append(
                    Problem(
                        f"spec.addressRanges[{index}].{field}",
                        f"{text} does not fit in {described}: only the last "
                        f"{128 - prefix.prefixlen} bits are free",
                    )
                )
    for index, subnet in enumerate(subnets):
        try:
            carve_subnet(prefix, offset=subnet.offset, prefix_length=subnet.prefix_length)
        except AddressError as error:
            message = str(error).replace(str(prefix), described)
            problems.append(Problem(f"spec.subnets[{index}]", message))
