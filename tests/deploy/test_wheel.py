"""The product's wheel (what the image installs) carries the operator and nothing of the
test bed: no control plane, namespaces, radvd or Kea helpers, no demo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_product_only(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dynamic_prefix_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    packages = {name.split("/")[0] for name in names if not name.endswith(".dist-info/")}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"dynamic_prefix"}
    assert not [name for name in names if "testbed" in name or "demo" in name]
    for package in ("model", "protocols", "link", "sources", "kube", "backends", "operator"):
        assert f"dynamic_prefix/{package}/__init__.py" in names
