"""The README's main job: the demo runs end to end on a throw-away control plane."""

from __future__ import annotations

import pytest

from dynamic_prefix.cli.main import main


@pytest.mark.controlplane
def test_demo_shows_the_guide_example_computed_for_a_static_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--prefix", "2001:db8:77::/64"]) == 0
    out = capsys.readouterr().out
    assert "CRD dynamicprefixes.dynamic-prefix.io installed" in out
    assert "loadbalancers   2001:db8:77:0:f000::   2001:db8:77:0:ffff:ffff:ffff:ffff" in out
    assert "2001:db8:77:0:f000::/68" in out
