"""`dynamic-prefix calc` and `dynamic-prefix crd`: golden outputs and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dynamic_prefix.cli.crd import crd_manifest_text, reference_markdown
from dynamic_prefix.cli.main import main

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "src/dynamic_prefix/examples/home-prefix.yaml"
GOLDEN = Path(__file__).parent / "golden"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_user_guide_example_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "calc", "-f", str(EXAMPLE), "--prefix", "2001:db8:abcd:1::/64")
    assert (code, err) == (0, "")
    assert out == (GOLDEN / "home-prefix.txt").read_text()


def test_user_guide_example_as_json_has_the_status_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "calc", "-f", str(EXAMPLE), "--prefix", "2001:db8:abcd:1::/64", "-o", "json"
    )
    assert code == 0
    assert json.loads(out) == {
        "prefix": "2001:db8:abcd:1::/64",
        "addressRanges": [
            {
                "name": "loadbalancers",
                "start": "2001:db8:abcd:1:f000::",
                "end": "2001:db8:abcd:1:ffff:ffff:ffff:ffff",
                "cidrs": ["2001:db8:abcd:1:f000::/68"],
                "cidr": "2001:db8:abcd:1:f000::/68",
            }
        ],
        "subnets": [],
    }


def test_delegated_56_with_subnets(capsys: pytest.CaptureFixture[str]) -> None:
    spec = GOLDEN / "subnets-56.yaml"
    code, out, _ = run(capsys, "calc", "-f", str(spec), "--prefix", "2001:db8:abcd:100::/56")
    assert code == 0
    assert out == (GOLDEN / "subnets-56.txt").read_text()
    code, out, _ = run(
        capsys, "calc", "-f", str(spec), "--prefix", "2001:db8:abcd:100::/56", "-o", "yaml"
    )
    data = yaml.safe_load(out)
    assert data["subnets"] == [
        {"name": "services", "cidr": "2001:db8:abcd:101::/64"},
        {"name": "small", "cidr": "2001:db8:abcd:100::200/120"},
    ]
    assert data["addressRanges"][1]["cidrs"] == [
        "2001:db8:abcd:100::1/128",
        "2001:db8:abcd:100::2/127",
        "2001:db8:abcd:100::4/127",
        "2001:db8:abcd:100::6/128",
    ]


def test_static_prefix_is_used_when_no_prefix_is_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["acquisition"] = {"static": {"prefix": "2001:db8:5::/64"}}
    path = tmp_path / "static.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, _ = run(capsys, "calc", "-f", str(path), "-o", "json")
    assert code == 0
    assert json.loads(out)["addressRanges"][0]["start"] == "2001:db8:5:0:f000::"


def test_a_range_low_in_the_64_gets_router_advice_that_fits_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["addressRanges"] = [{"name": "low", "start": "::100", "end": "::1ff"}]
    path = tmp_path / "low.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, _ = run(capsys, "calc", "-f", str(path), "--prefix", "2001:db8:5::/64")
    assert code == 0
    assert "start ::200, end ::ffff:ffff:ffff:ffff" in out  # UniFi: the pool above it
    assert "A range starts below ::1000, inside odhcpd's smallest host-ID space" in out
    assert "with odds below 1 in a million" in out


def test_bgp_advertise_is_acted_on_without_a_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["subnets"] = [{"name": "bgp", "prefixLength": 64, "bgp": {"advertise": True}}]
    doc["spec"]["transition"] = {"mode": "ha"}  # acted on: no note
    path = tmp_path / "bgp.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, err = run(capsys, "calc", "-f", str(path), "--prefix", "2001:db8:5::/48")
    assert code == 0
    assert "SUBNETS" in out
    assert "note:" not in err, err  # announced by the operator: nothing to warn about


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("2001:db8::1/64", "--prefix: '2001:db8::1/64' has host bits set"),
        ("nonsense", "--prefix: 'nonsense' has no prefix length"),
        ("fe80::/64", "--prefix: fe80::/64 would be refused by the prefix filter"),
        ("2001:db8::/80", "does not fit 2001:db8::/80"),
    ],
)
def test_bad_prefix_exits_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], prefix: str, message: str
) -> None:
    code, out, err = run(capsys, "calc", "-f", str(EXAMPLE), "--prefix", prefix)
    assert code == 2
    assert out == ""
    assert message in err


def test_invalid_spec_lists_every_problem_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: dynamic-prefix.io/v1alpha1\nkind: DynamicPrefix\nmetadata: {name: bad}\n"
        "spec:\n  acquisition: {routerAdvertisement: {interface: eth0}}\n"
        "  addressRanges: [{name: a, start: '::zz', end: '::1'}]\n"
        "  subnets: [{name: s, prefixLength: 64, offset: 9}]\n"
    )
    code, out, err = run(capsys, "calc", "-f", str(path), "--prefix", "2001:db8::/64")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "error: DynamicPrefix bad is invalid:",
        "  spec.addressRanges[0].start: '::zz' is not a valid IPv6 address",
        "  spec.subnets[0]: offset 9 is past the last subnet: the /64 that "
        "router-advertisement delivers holds 1 /64 subnet (offsets 0 to 0)",
    ]


def test_unreadable_or_unsuitable_files_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "calc", "-f", str(tmp_path / "missing.yaml"))[0] == 2
    (tmp_path / "notyaml.yaml").write_text("a: [unclosed")
    code, _, err = run(capsys, "calc", "-f", str(tmp_path / "notyaml.yaml"))
    assert (code, "not valid YAML" in err) == (2, True)
    (tmp_path / "empty.yaml").write_text("kind: ConfigMap\n")
    code, _, err = run(capsys, "calc", "-f", str(tmp_path / "empty.yaml"))
    assert (code, "no DynamicPrefix in the file" in err) == (2, True)
    code, _, err = run(capsys, "calc", "-f", str(EXAMPLE))
    assert (code, "--prefix is required" in err) == (2, True)


def test_committed_crd_manifest_is_generated_from_the_schema() -> None:
    committed = (ROOT / "deploy/crd/dynamicprefixes.yaml").read_text()
    assert committed == crd_manifest_text(), (
        "run: dynamic-prefix crd > deploy/crd/dynamicprefixes.yaml"
    )


def test_committed_field_reference_is_generated_from_the_schema() -> None:
    committed = (ROOT / "docs/reference.md").read_text()
    assert committed == reference_markdown(), (
        "run: dynamic-prefix crd --reference > docs/reference.md"
    )
    for field in ("spec.acquisition.dhcpv6pd.requestedPrefixLength", "status.history[].validUntil"):
        assert f"`{field}`" in committed


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "calc" in out
    assert "crd" in out


def test_a_range_smaller_than_a_calico_block_is_warned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["addressRanges"] = [
        {"name": "aligned", "start": "::ffff:0:0:0", "end": "::ffff:0:0:3f"},
        {"name": "small", "start": "::ffff:0:0:40", "end": "::ffff:0:0:4f"},
    ]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(capsys, "calc", "-f", str(path), "--prefix", "2001:db8:5::/64")
    assert code == 0
    assert err.count("warning:") == 1
    assert "address range small splits into CIDRs as small as /124" in err
