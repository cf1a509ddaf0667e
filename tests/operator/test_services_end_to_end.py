"""A LoadBalancer Service following the prefix a real router (radvd in a network
namespace) advertises: renumbered, then the old prefix withdrawn (valid lifetime 0),
which takes the old address off the Service at once, as it leaves the pools.

No IPAM controller runs here; the Service's annotations are what is checked.
"""

from __future__ import annotations

import pytest

from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.netns import Link
from testbed.radvd import PrefixAd, Radvd
from tests.operator.operator_testkit import CILIUM_LB_POOL, blocks, dynamic_prefix
from tests.operator.test_services import (
    CILIUM,
    SERVICES,
    SUFFIX,
    TARGET,
    address,
    lb_service,
    opted_in,
    tag,
    wait_annotation,
)

__all__ = ["tag"]  # the fixture

pytestmark = pytest.mark.netns


def test_a_service_follows_a_renumbering_router_and_a_withdrawal_leaves_at_once(
    cluster: Cluster, operator: OperatorProcess, root_link: Link, tag: str
) -> None:
    dp, name = f"ra-svc-{tag}", f"ra-svc-{tag}"
    old, new = "2001:db8:e5::/64", "2001:db8:e6::/64"
    with Radvd(root_link, prefixes=[PrefixAd(old, valid=600, preferred=300)]) as radvd:
        ra = {"interface": root_link.node_ifname,
              "trustedRouters": [str(root_link.router.link_local)]}  # fmt: skip
        obj = dynamic_prefix(dp, acquisition={"routerAdvertisement": ra}, history=2)
        obj["spec"]["transition"]["mode"] = "ha"
        cluster.apply(obj)
        cluster.apply(CILIUM_LB_POOL.manifest(f"{dp}-pool", dp=dp, entries=[]))
        cluster.apply(lb_service(name, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX})))
        wait_annotation(cluster, name, CILIUM, address(old), "the advertised prefix")

        radvd.set_prefixes(
            [PrefixAd(new, valid=600, preferred=300), PrefixAd(old, valid=300, preferred=0)]
        )
        wait_annotation(cluster, name, CILIUM, f"{address(new)},{address(old)}", "renumbered")
        wait_annotation(cluster, name, TARGET, address(new), "DNS on the new address")

        radvd.set_prefixes([PrefixAd(new, valid=600, preferred=300)], withdraw=[old])
        wait_annotation(cluster, name, CILIUM, address(new), "the withdrawn prefix leaves")
        # the same moment as the pool: the Service follows the history exactly as pools do
        wait_for(lambda: len(blocks(cluster, f"{dp}-pool")) == 1, what="pool without it")
        cluster.delete(f"{SERVICES}/{name}")
