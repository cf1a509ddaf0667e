"""CPU cost of the sans-IO DHCPv6 prefix delegation client per message exchange.

Runs Solicit/Advertise/Request/Reply in-process many times and prints the process CPU time
(`time.process_time`) per exchange. The server side is canned: the Advertise and Reply are
built once with the codec and only the client's transaction id is copied into each answer,
so the numbers are the client's work (building its messages, parsing the answers, the
state machine, the events). Run:

    .venv/bin/python benchmarks/bench_dhcpv6_client.py [--exchanges 20000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from ipaddress import IPv6Network

from dynamic_prefix.protocols.dhcpv6 import (
    ClientIdOption,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    Option,
    PreferenceOption,
    ServerIdOption,
    build_message,
)
from dynamic_prefix.protocols.dhcpv6_client import ClientState, PdClient, PdClientConfig

CLIENT_DUID = bytes.fromhex("0003 0001 020000000001")
SERVER_DUID = bytes.fromhex("0001 0001 2b7c9e80 0200000000fe")
PREFIX = IPv6Network("2001:db8:1200::/56")
IAID = 1
T1, T2 = 1800.0, 2880.0


def canned(msg_type: MessageType, *, preference: int | None) -> bytes:
    """A server answer with transaction id 0, to be patched with the client's."""
    ia = IaPdOption(
        IAID, int(T1), int(T2), (IaPrefixOption(3600, 7200, 56, PREFIX.network_address),)
    )
    options: tuple[Option, ...] = (ServerIdOption(SERVER_DUID), ClientIdOption(CLIENT_DUID), ia)
    if preference is not None:
        options = (*options, PreferenceOption(preference))
    return build_message(Message(msg_type, 0, options))


def answering(template: bytes, datagram: bytes) -> bytes:
    """``template`` carrying the transaction id of the client's ``datagram``."""
    return template[:1] + datagram[1:4] + template[4:]


def new_client(rng: Callable[[], float]) -> PdClient:
    return PdClient(
        PdClientConfig(
            duid=CLIENT_DUID, iaid=IAID, rng=rng, requested_prefix_length=56, solicit_max_delay=0
        )
    )


def full_exchange(rng: Callable[[], float], advertise: bytes, reply: bytes, collect: bool) -> None:
    """Start, Solicit, Advertise, Request, Reply: one client from nothing to Bound."""
    client = new_client(rng)
    client.start(0.0)
    (solicit,) = client.datagrams_to_send()
    client.receive(answering(advertise, solicit), 0.01)
    now = 0.01
    if collect:  # preference below 255: the Request waits for the end of the first RT
        deadline = client.next_deadline()
        assert deadline is not None
        client.advance(deadline)
        now = deadline
    (request,) = client.datagrams_to_send()
    client.receive(answering(reply, request), now + 0.01)  # a prompt server: no retransmission
    client.next_events()
    if client.state is not ClientState.BOUND:
        raise SystemExit(f"exchange ended in {client.state.value}, not bound")


def renew_exchange(client: PdClient, reply: bytes, now: float) -> float:
    """Advance a bound client to T1, answer its Renew; the time it was renewed at."""
    now += T1
    client.advance(now)
    (renew,) = client.datagrams_to_send()
    client.receive(answering(reply, renew), now)
    client.next_events()
    if client.state is not ClientState.BOUND:
        raise SystemExit(f"renew ended in {client.state.value}, not bound")
    return now


def measure(label: str, count: int, run: Callable[[], None]) -> None:
    for _ in range(min(count // 10, 1000)):  # warm-up
        run()
    started = time.process_time()
    for _ in range(count):
        run()
    spent = time.process_time() - started
    print(
        f"{label:<52} {count:>7} runs  {spent:7.3f} s CPU  "
        f"{spent / count * 1e6:8.1f} us/exchange  {count / spent:9.0f} exchanges/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    count = arguments.exchanges
    rng = random.Random(arguments.seed).random

    advertise_now = canned(MessageType.ADVERTISE, preference=255)
    advertise_wait = canned(MessageType.ADVERTISE, preference=0)
    reply = canned(MessageType.REPLY, preference=None)

    print(
        f"DHCPv6 PD client, CPU per exchange ({time.get_clock_info('process_time').implementation})"
    )
    measure(
        "Solicit/Advertise(255)/Request/Reply, new client",
        count,
        lambda: full_exchange(rng, advertise_now, reply, collect=False),
    )
    measure(
        "Solicit/Advertise(0)/first-RT end/Request/Reply",
        count,
        lambda: full_exchange(rng, advertise_wait, reply, collect=True),
    )

    bound = new_client(rng)
    bound.start(0.0)
    (solicit,) = bound.datagrams_to_send()
    bound.receive(answering(advertise_now, solicit), 0.0)
    (request,) = bound.datagrams_to_send()
    bound.receive(answering(reply, request), 0.0)
    now = [0.0]

    def renew_once() -> None:
        now[0] = renew_exchange(bound, reply, now[0])

    measure("Renew/Reply on a bound client", count, renew_once)


if __name__ == "__main__":
    main()
