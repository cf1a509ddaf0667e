"""The README's main job: the demo runs end to end and the pools follow every change."""

from __future__ import annotations

import pytest

from testbed.demo import main
from testbed.netns import namespaces_supported


@pytest.mark.controlplane
def test_demo_shows_every_pool_following_each_prefix_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--check", "--rotations", "2"]) == 0
    out = capsys.readouterr().out
    supported, _ = namespaces_supported()
    if supported:  # as root: the prefix comes from radvd in a network namespace
        assert "simulated router: radvd in network namespace" in out
        assert "radvd renumbered" in out
    assert "CRDs installed" in out
    for prefix in ("2001:db8:abcd:1::/64", "2001:db8:beef:1::/64", "2001:db8:cafe:1::/64"):
        assert f"every pool holds {prefix}" in out
    # the entries written by hand survive every change
    assert out.count('{"cidr": "192.0.2.0/24"}') == 3
    assert out.count('"198.51.100.10-198.51.100.20"') == 3
    assert "history 2001:db8:beef:1::/64, 2001:db8:abcd:1::/64" in out


@pytest.mark.controlplane
def test_demo_without_a_simulated_router_changes_a_static_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--check", "--static", "--rotations", "1"]) == 0
    out = capsys.readouterr().out
    assert "no simulated router (--static given)" in out
    assert "every pool holds 2001:db8:beef:1::/64" in out
