"""The README's main job: the demo runs end to end and the pools follow every change."""

from __future__ import annotations

import pytest

from dynamic_prefix.cli.main import main


@pytest.mark.controlplane
def test_demo_shows_every_pool_following_each_prefix_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--check", "--rotations", "2"]) == 0
    out = capsys.readouterr().out
    assert "CRDs installed" in out
    for prefix in ("2001:db8:abcd:1::/64", "2001:db8:beef:1::/64", "2001:db8:cafe:1::/64"):
        assert f"every pool holds {prefix}" in out
    # the entries written by hand survive every change
    assert out.count('{"cidr": "192.0.2.0/24"}') == 3
    assert out.count('"198.51.100.10-198.51.100.20"') == 3
    assert "history 2001:db8:beef:1::/64, 2001:db8:abcd:1::/64" in out
