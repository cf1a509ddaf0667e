"""The operator's own endpoints: /healthz, /readyz and /metrics, read as Prometheus would."""

from __future__ import annotations

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    METALLB_POOL,
    dynamic_prefix,
    new_tag,
)


def test_health_readiness_and_metrics_tell_what_the_operator_believes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"metrics-{tag}", f"metrics-pool-{tag}"
    ranges = [{"name": "lb", "start": "::f000:0:0:0", "end": "::f000:0:0:ff"}]
    cluster.apply(dynamic_prefix(dp, "2001:db8:5e::/64", ranges=ranges))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp))
    # a MetalLB pool naming a range the DynamicPrefix does not have: out of sync
    wrong = METALLB_POOL.manifest(
        f"metrics-wrong-{tag}", dp=dp, address_range="nope", namespace="default"
    )
    cluster.apply(wrong)

    def get(path: str) -> tuple[int, str] | None:
        try:
            return operator.http_get(path)
        except OSError:
            return None  # not listening yet

    assert wait_for(lambda: get("/healthz"), what="/healthz answers") == (200, "ok\n")
    wait_for(lambda: (get("/readyz") or (0, ""))[0] == 200, what="/readyz ready")

    expected = [
        f'dynamic_prefix_current_prefix_info{{dynamic_prefix="{dp}",'
        f'prefix="2001:db8:5e::/64",source="static"}} 1.0',
        f'dynamic_prefix_pools{{backend="cilium-lb-ip-pool",dynamic_prefix="{dp}",'
        f'state="in_sync"}} 1.0',
        f'dynamic_prefix_pools{{backend="cilium-lb-ip-pool",dynamic_prefix="{dp}",'
        f'state="failing"}} 0.0',
        f'dynamic_prefix_pools{{backend="metallb-ip-address-pool",dynamic_prefix="{dp}",'
        f'state="failing"}} 1.0',
        f'dynamic_prefix_reconcile_errors_total{{backend="metallb-ip-address-pool",'
        f'dynamic_prefix="{dp}"}}',
        f'dynamic_prefix_source_reports_total{{dynamic_prefix="{dp}",source="static"}} 1.0',
        f'dynamic_prefix_prefix_changes_total{{dynamic_prefix="{dp}",source="static"}} 1.0',
        f'dynamic_prefix_prefix_confirmed{{dynamic_prefix="{dp}"}} 1.0',
        f'dynamic_prefix_events_total{{dynamic_prefix="{dp}",kind="prefix_received"}} 1.0',
        f'dynamic_prefix_events_total{{dynamic_prefix="{dp}",kind="pool_write"}} 1.0',
    ]

    def metrics_show_it() -> bool:
        answer = get("/metrics")
        return answer is not None and all(line in answer[1] for line in expected)

    wait_for(metrics_show_it, what="metrics for the DynamicPrefix and its pool")
    text = operator.http_get("/metrics")[1]
    assert 'dynamic_prefix_api_requests_total{verb="patch"}' in text
    assert "dynamic_prefix_build_info" in text
