"""The container image: scripts/build-image.sh builds it without a registry, and the console
script works inside it exactly as in the development virtualenv.

Slow (about two minutes the first time, when the Debian base is made with debootstrap;
about 40 s after) and it needs root: it runs only with DYNAMIC_PREFIX_IMAGE_TEST=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
BUILD_SCRIPT = REPO / "scripts/build-image.sh"
EXAMPLE = REPO / "src/dynamic_prefix/examples/home-prefix.yaml"
PREFIX = "2001:db8:abcd:1::/64"
ENTRYPOINT = "/opt/venv/bin/dynamic-prefix"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DYNAMIC_PREFIX_IMAGE_TEST") != "1",
        reason="builds a container image with buildah (root, minutes): "
        "set DYNAMIC_PREFIX_IMAGE_TEST=1 to run it",
    ),
]


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["buildah", "--storage-driver", "vfs", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"buildah {' '.join(args)}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built by the script; its name (the script's last line of output)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    assert result.returncode == 0, f"{BUILD_SCRIPT} failed:\n{result.stderr[-5000:]}"
    *_, size, name = result.stdout.split("\n", maxsplit=-1)[:-1]
    print(f"{name}: {size}")
    return name


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    """A working container of the image (buildah's, nothing running), removed after."""
    name = buildah("from", "--pull-never", image).stdout.strip()
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def run_in(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` inside the container, as the image's user (chroot isolation, as root can here)."""
    return buildah("run", "--isolation", "chroot", container, "--", *argv, check=False)


def test_the_entrypoint_is_the_console_script_run_by_a_non_root_user(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]
    assert config["Entrypoint"] == [ENTRYPOINT]
    assert config["User"] == "65532:65532"


def test_help_runs_inside_the_image(container: str) -> None:
    result = run_in(container, ENTRYPOINT, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dynamic-prefix")
    assert "calc" in result.stdout


def test_calc_inside_the_image_prints_what_it_prints_in_the_development_venv(
    container: str,
) -> None:
    """The example shipped inside the image's package, against the repository's own copy."""
    locate = run_in(
        container,
        "/opt/venv/bin/python",
        "-c",
        "import importlib.resources as r; "
        "print(r.files('dynamic_prefix') / 'examples' / 'home-prefix.yaml')",
    )
    assert locate.returncode == 0, locate.stderr
    inside = run_in(container, ENTRYPOINT, "calc", "-f", locate.stdout.strip(), "--prefix", PREFIX)
    assert inside.returncode == 0, inside.stderr
    here = subprocess.run(
        [sys.executable, "-m", "dynamic_prefix.cli.main", "calc", "-f", str(EXAMPLE),
         "--prefix", PREFIX],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert inside.stdout == here.stdout
    assert "2001:db8:abcd:1:f000::/68" in inside.stdout


def test_the_image_runs_as_65532_and_carries_no_pip(container: str) -> None:
    assert run_in(container, "id", "-u").stdout.strip() == "65532"
    pip = run_in(container, "/opt/venv/bin/python", "-c", "import pip")
    assert pip.returncode != 0, "pip is a build tool; the image should not hold it"
