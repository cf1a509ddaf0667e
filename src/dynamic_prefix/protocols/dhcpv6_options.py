"""DHCPv6 options as values, and the wire form of an option list (RFC 8415 section 21).

The lower layer of the DHCPv6 codec: `dynamic_prefix.protocols.dhcpv6` frames messages and
DUIDs on top of it and re-exports every public name defined here, so import them from there.
The codec's errors live here because option parsing and building are the first to raise
them. Where IA_PD and IA Prefix may appear is checked here, which also bounds the nesting
depth of the parser.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import ClassVar, TypeVar

__all__ = [
    "INFINITY",
    "MAX_DUID_LENGTH",
    "MIN_DUID_LENGTH",
    "ClientIdOption",
    "Dhcpv6BuildError",
    "Dhcpv6ParseError",
    "ElapsedTimeOption",
    "IaPdOption",
    "IaPrefixOption",
    "Option",
    "OptionCode",
    "OptionRequestOption",
    "ParseErrorReason",
    "PreferenceOption",
    "RapidCommitOption",
    "ReconfigureAcceptOption",
    "ServerIdOption",
    "SolMaxRtOption",
    "StatusCode",
    "StatusCodeOption",
    "UnknownOption",
    "build_options",
    "check_range",
    "first_option",
    "parse_options",
]

INFINITY = 0xFFFFFFFF
"""A lifetime, T1 or T2 of all ones means "forever" (RFC 8415 section 7.7)."""

MIN_DUID_LENGTH = 3  # 2-octet type + at least 1 octet of identifier (RFC 8415 section 11.1)
MAX_DUID_LENGTH = 130  # 2-octet type + at most 128 octets of identifier
_MAX_PREFIX_LENGTH = 128
_UINT16 = 0xFFFF
_UINT32 = 0xFFFFFFFF


class OptionCode(enum.IntEnum):
    """Option codes this module knows (RFC 8415 section 21, registry in section 24)."""

    CLIENTID = 1
    SERVERID = 2
    IA_NA = 3
    ORO = 6
    PREFERENCE = 7
    ELAPSED_TIME = 8
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    RECONF_ACCEPT = 20
    DNS_SERVERS = 23
    DOMAIN_LIST = 24
    IA_PD = 25
    IAPREFIX = 26
    SOL_MAX_RT = 82


class StatusCode(enum.IntEnum):
    """Status codes (RFC 8415 section 21.13); other values may arrive and are kept as ints."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


class ParseErrorReason(enum.StrEnum):
    """Why bytes were refused; stable names for counters and logs."""

    TRUNCATED_HEADER = "truncated-header"
    UNKNOWN_MESSAGE_TYPE = "unknown-message-type"
    TRUNCATED_OPTION_HEADER = "truncated-option-header"
    OPTION_OVERRUNS_MESSAGE = "option-overruns-message"
    BAD_OPTION_LENGTH = "bad-option-length"
    MISPLACED_OPTION = "misplaced-option"
    BAD_PREFIX_LENGTH = "bad-prefix-length"
    BAD_STATUS_MESSAGE = "bad-status-message"
    BAD_DUID = "bad-duid"


class Dhcpv6ParseError(ValueError):
    """Bytes that are not a well-formed DHCPv6 message, option or DUID."""

    def __init__(self, reason: ParseErrorReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class Dhcpv6BuildError(ValueError):
    """A value that cannot be encoded (a field out of range, an option too long)."""


# --- Options ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientIdOption:
    """Client Identifier: the client's DUID (RFC 8415 section 21.2)."""

    code: ClassVar[int] = OptionCode.CLIENTID
    duid: bytes


@dataclass(frozen=True, slots=True)
class ServerIdOption:
    """Server Identifier: the server's DUID (RFC 8415 section 21.3)."""

    code: ClassVar[int] = OptionCode.SERVERID
    duid: bytes


@dataclass(frozen=True, slots=True)
class OptionRequestOption:
    """Option Request: the option codes the client asks for (RFC 8415 section 21.7)."""

    code: ClassVar[int] = OptionCode.ORO
    requested: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PreferenceOption:
    """Preference of the server sending an Advertise; 255 is "take me now" (section 21.8)."""

    code: ClassVar[int] = OptionCode.PREFERENCE
    value: int


@dataclass(frozen=True, slots=True)
class ElapsedTimeOption:
    """Time since the exchange began, in hundredths of a second (RFC 8415 section 21.9)."""

    code: ClassVar[int] = OptionCode.ELAPSED_TIME
    hundredths: int


@dataclass(frozen=True, slots=True)
class StatusCodeOption:
    """Status Code with a UTF-8 message for humans (RFC 8415 section 21.13)."""

    code: ClassVar[int] = OptionCode.STATUS_CODE
    status: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class RapidCommitOption:
    """Rapid Commit: a two-message exchange is wanted or done (RFC 8415 section 21.14)."""

    code: ClassVar[int] = OptionCode.RAPID_COMMIT


@dataclass(frozen=True, slots=True)
class ReconfigureAcceptOption:
    """Reconfigure Accept: the client would accept Reconfigure (RFC 8415 section 21.20)."""

    code: ClassVar[int] = OptionCode.RECONF_ACCEPT


@dataclass(frozen=True, slots=True)
class SolMaxRtOption:
    """SOL_MAX_RT override from a server, in seconds (RFC 8415 section 21.24)."""

    code: ClassVar[int] = OptionCode.SOL_MAX_RT
    seconds: int


@dataclass(frozen=True, slots=True)
class IaPrefixOption:
    """IA Prefix: one delegated prefix and its lifetimes (RFC 8415 section 21.22).

    ``address`` and ``prefix_length`` are kept as sent, host bits included, so that a
    parsed option builds back to the same bytes; `network` masks the host bits.
    """

    code: ClassVar[int] = OptionCode.IAPREFIX
    preferred_lifetime: int
    valid_lifetime: int
    prefix_length: int
    address: IPv6Address
    options: tuple[Option, ...] = ()

    @property
    def network(self) -> IPv6Network:
        """The prefix with any host bits cleared."""
        return IPv6Network((int(self.address), self.prefix_length), strict=False)

    @property
    def has_host_bits(self) -> bool:
        """True if ``address`` has bits set beyond ``prefix_length``."""
        host_bits = max(0, _MAX_PREFIX_LENGTH - self.prefix_length)
        return bool(int(self.address) & ((1 << host_bits) - 1))

    def find(self, kind: type[_O]) -> _O | None:
        """The first encapsulated option of type ``kind``."""
        return first_option(self.options, kind)


@dataclass(frozen=True, slots=True)
class IaPdOption:
    """Identity Association for Prefix Delegation (RFC 8415 section 21.21)."""

    code: ClassVar[int] = OptionCode.IA_PD
    iaid: int
    t1: int
    t2: int
    options: tuple[Option, ...] = ()

    def find(self, kind: type[_O]) -> _O | None:
        """The first encapsulated option of type ``kind``."""
        return first_option(self.options, kind)

    def find_all(self, kind: type[_O]) -> tuple[_O, ...]:
        """Every encapsulated option of type ``kind``, in order."""
        return tuple(option for option in self.options if isinstance(option, kind))


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """Any option this module does not interpret, kept verbatim."""

    code: int
    data: bytes = b""


Option = (
    ClientIdOption
    | ServerIdOption
    | OptionRequestOption
    | PreferenceOption
    | ElapsedTimeOption
    | StatusCodeOption
    | RapidCommitOption
    | ReconfigureAcceptOption
    | SolMaxRtOption
    | IaPdOption
    | IaPrefixOption
    | UnknownOption
)

_O = TypeVar("_O")


def first_option(options: tuple[Option, ...], kind: type[_O]) -> _O | None:
    """The first of ``options`` of type ``kind``; what every ``find`` method returns."""
    for option in options:
        if isinstance(option, kind):
            return option
    return None


# --- Parsing ---------------------------------------------------------------------------


class _Level(enum.Enum):
    """Where an option list sits; decides which structural options may appear."""

    MESSAGE = "message"
    IA_PD = "IA_PD"
    IA_PREFIX = "IA Prefix"


_HEADER = struct.Struct("!HH")
_IA_PD_FIXED = struct.Struct("!III")
_IA_PREFIX_FIXED = struct.Struct("!IIB16s")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

_EXACT_SIZES: dict[int, int] = {
    OptionCode.PREFERENCE: 1,
    OptionCode.ELAPSED_TIME: 2,
    OptionCode.RAPID_COMMIT: 0,
    OptionCode.RECONF_ACCEPT: 0,
    OptionCode.SOL_MAX_RT: 4,
}


def parse_options(data: bytes, start: int, end: int) -> tuple[Option, ...]:
    """The top-level options of a message, in ``data[start:end]``."""
    return _parse_options(data, start, end, _Level.MESSAGE)


def _parse_options(data: bytes, start: int, end: int, level: _Level) -> tuple[Option, ...]:
    options: list[Option] = []
    position = start
    while position < end:
        if end - position < _HEADER.size:
            raise Dhcpv6ParseError(
                ParseErrorReason.TRUNCATED_OPTION_HEADER,
                f"{end - position} bytes left in the {level.value} at offset {position}",
            )
        code, length = _HEADER.unpack_from(data, position)
        body = position + _HEADER.size
        position = body + length
        if position > end:
            raise Dhcpv6ParseError(
                ParseErrorReason.OPTION_OVERRUNS_MESSAGE,
                f"option {code} declares {length} bytes, {end - body} are left in the "
                f"{level.value}",
            )
        options.append(_parse_option(code, data, body, position, level))
    return tuple(options)


def _parse_option(code: int, data: bytes, start: int, end: int, level: _Level) -> Option:
    length = end - start
    exact = _EXACT_SIZES.get(code)
    if exact is not None and length != exact:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_OPTION_LENGTH,
            f"option {code} is {length} bytes long, it must be exactly {exact}",
        )
    if code == OptionCode.CLIENTID:
        return ClientIdOption(_parse_duid_bytes(code, data[start:end]))
    if code == OptionCode.SERVERID:
        return ServerIdOption(_parse_duid_bytes(code, data[start:end]))
    if code == OptionCode.IA_PD:
        return _parse_ia_pd(data, start, end, level)
    if code == OptionCode.IAPREFIX:
        return _parse_ia_prefix(data, start, end, level)
    if code == OptionCode.STATUS_CODE:
        return _parse_status_code(data, start, end)
    if code == OptionCode.ORO:
        if length % 2:
            raise Dhcpv6ParseError(
                ParseErrorReason.BAD_OPTION_LENGTH,
                f"Option Request is {length} bytes long, it must be a multiple of 2",
            )
        return OptionRequestOption(
            tuple(_U16.unpack_from(data, offset)[0] for offset in range(start, end, 2))
        )
    if code == OptionCode.ELAPSED_TIME:
        return ElapsedTimeOption(_U16.unpack_from(data, start)[0])
    if code == OptionCode.PREFERENCE:
        return PreferenceOption(data[start])
    if code == OptionCode.RAPID_COMMIT:
        return RapidCommitOption()
    if code == OptionCode.RECONF_ACCEPT:
        return ReconfigureAcceptOption()
    if code == OptionCode.SOL_MAX_RT:
        return SolMaxRtOption(_U32.unpack_from(data, start)[0])
    return UnknownOption(code, bytes(data[start:end]))


def _parse_duid_bytes(code: int, duid: bytes) -> bytes:
    if not MIN_DUID_LENGTH <= len(duid) <= MAX_DUID_LENGTH:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_OPTION_LENGTH,
            f"option {code} holds a {len(duid)}-byte DUID, a DUID is "
            f"{MIN_DUID_LENGTH} to {MAX_DUID_LENGTH} bytes",
        )
    return bytes(duid)


def _parse_ia_pd(data: bytes, start: int, end: int, level: _Level) -> IaPdOption:
    if level is not _Level.MESSAGE:
        raise Dhcpv6ParseError(
            ParseErrorReason.MISPLACED_OPTION, f"IA_PD inside an {level.value} option"
        )
    if end - start < _IA_PD_FIXED.size:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_OPTION_LENGTH,
            f"IA_PD is {end - start} bytes long, it needs at least {_IA_PD_FIXED.size}",
        )
    iaid, t1, t2 = _IA_PD_FIXED.unpack_from(data, start)
    nested = _parse_options(data, start + _IA_PD_FIXED.size, end, _Level.IA_PD)
    return IaPdOption(iaid, t1, t2, nested)


def _parse_ia_prefix(data: bytes, start: int, end: int, level: _Level) -> IaPrefixOption:
    if level is not _Level.IA_PD:
        where = "at the top level of a message" if level is _Level.MESSAGE else "inside another"
        raise Dhcpv6ParseError(ParseErrorReason.MISPLACED_OPTION, f"IA Prefix {where}")
    if end - start < _IA_PREFIX_FIXED.size:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_OPTION_LENGTH,
            f"IA Prefix is {end - start} bytes long, it needs at least {_IA_PREFIX_FIXED.size}",
        )
    preferred, valid, prefix_length, address = _IA_PREFIX_FIXED.unpack_from(data, start)
    if prefix_length > _MAX_PREFIX_LENGTH:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_PREFIX_LENGTH, f"prefix length {prefix_length} is over 128"
        )
    nested = _parse_options(data, start + _IA_PREFIX_FIXED.size, end, _Level.IA_PREFIX)
    return IaPrefixOption(preferred, valid, prefix_length, IPv6Address(address), nested)


def _parse_status_code(data: bytes, start: int, end: int) -> StatusCodeOption:
    if end - start < _U16.size:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_OPTION_LENGTH,
            f"Status Code is {end - start} bytes long, it needs at least 2",
        )
    status = _U16.unpack_from(data, start)[0]
    try:
        message = bytes(data[start + 2 : end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_STATUS_MESSAGE,
            f"status {status} message is not UTF-8 ({exc.reason} at byte {exc.start})",
        ) from None
    return StatusCodeOption(status, message)


# --- Building --------------------------------------------------------------------------


def build_options(options: tuple[Option, ...]) -> bytes:
    """The wire form of an option list, in order; raises `Dhcpv6BuildError`."""
    return b"".join(_build_option(option) for option in options)


def _build_option(option: Option) -> bytes:
    body = _option_body(option)
    if len(body) > _UINT16:
        raise Dhcpv6BuildError(f"option {option.code} body is {len(body)} bytes, over 65535")
    check_range(option.code, _UINT16, "option code")
    return _HEADER.pack(option.code, len(body)) + body


def _option_body(option: Option) -> bytes:
    match option:
        case ClientIdOption(duid=duid) | ServerIdOption(duid=duid):
            return bytes(duid)
        case IaPdOption(iaid=iaid, t1=t1, t2=t2, options=nested):
            for value, what in ((iaid, "IAID"), (t1, "T1"), (t2, "T2")):
                check_range(value, _UINT32, what)
            return _IA_PD_FIXED.pack(iaid, t1, t2) + build_options(nested)
        case IaPrefixOption():
            check_range(option.preferred_lifetime, _UINT32, "preferred lifetime")
            check_range(option.valid_lifetime, _UINT32, "valid lifetime")
            check_range(option.prefix_length, 0xFF, "prefix length")
            fixed = _IA_PREFIX_FIXED.pack(
                option.preferred_lifetime,
                option.valid_lifetime,
                option.prefix_length,
                option.address.packed,
            )
            return fixed + build_options(option.options)
        case StatusCodeOption(status=status, message=text):
            check_range(status, _UINT16, "status code")
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Dhcpv6BuildError(f"status message cannot be UTF-8: {exc}") from None
            return _U16.pack(status) + encoded
        case OptionRequestOption(requested=requested):
            for requested_code in requested:
                check_range(requested_code, _UINT16, "requested option code")
            return b"".join(_U16.pack(requested_code) for requested_code in requested)
        case ElapsedTimeOption(hundredths=hundredths):
            check_range(hundredths, _UINT16, "elapsed time")
            return _U16.pack(hundredths)
        case PreferenceOption(value=value):
            check_range(value, 0xFF, "preference")
            return bytes((value,))
        case SolMaxRtOption(seconds=seconds):
            check_range(seconds, _UINT32, "SOL_MAX_RT")
            return _U32.pack(seconds)
        case RapidCommitOption() | ReconfigureAcceptOption():
            return b""
        case UnknownOption(data=data):
            return bytes(data)


def check_range(value: int, maximum: int, what: str) -> None:
    """Raise `Dhcpv6BuildError` unless ``value`` fits a field that holds 0 to ``maximum``."""
    if not 0 <= value <= maximum:
        raise Dhcpv6BuildError(f"{what} {value} is not between 0 and {maximum}")
