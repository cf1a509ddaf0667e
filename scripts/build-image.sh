#!/usr/bin/env bash
# Builds the operator's container image without any container registry (TESTBED.md
# section 7): a minimal Debian base made once with debootstrap, then the Containerfile
# with buildah. Needs root (debootstrap, buildah's vfs storage); installs buildah and
# debootstrap with apt if they are missing.
#
#   scripts/build-image.sh                 # -> localhost/dynamic-prefix-operator:<version>
#   scripts/build-image.sh --rebuild-base  # make localhost/base:bookworm again first
#
# The Python dependencies are fetched on this machine as wheels, pinned by
# constraints.txt, and handed to the build in its context: the build itself needs no
# network and no index credentials, and builds the package from the repository's source.
# Last line of output: the image name; the line before it, its size.
#
# Environment: IMAGE (default localhost/dynamic-prefix-operator:<version in pyproject.toml>),
# DEBIAN_MIRROR (default: the first URIs: of /etc/apt/sources.list.d/debian.sources, the
# mirror this machine already uses).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=localhost/base:bookworm
SUITE=bookworm
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
IMAGE=${IMAGE:-localhost/dynamic-prefix-operator:$version}
REBUILD_BASE=0
for arg in "$@"; do
  case $arg in
    --rebuild-base) REBUILD_BASE=1 ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "run as root: debootstrap and buildah's vfs storage need it" >&2
  exit 1
fi

missing=()
for p in buildah debootstrap python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bah() { buildah --storage-driver vfs "$@"; }
started=$SECONDS
work=$(mktemp -d /tmp/dynamic-prefix-image.XXXXXX)
container=""
replaced_base=""
cleanup() {
  [[ -n $container ]] && bah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- the base: Debian minbase + python3, once ---------------------------------------------
if ((REBUILD_BASE)) || ! bah images --quiet "$BASE" >/dev/null 2>&1; then
  # The mirror this machine's apt uses (deb822 first, then the one-line format).
  mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
  if [[ -z $mirror ]]; then
    echo "no Debian mirror: set DEBIAN_MIRROR (none in /etc/apt/sources.list.d/debian.sources)" >&2
    exit 1
  fi
  echo "building $BASE with debootstrap from $mirror (about a minute, once)" >&2
  rootfs=$work/rootfs
  debootstrap --variant=minbase --include=python3 "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # What a container never uses: downloaded packages, package lists, docs, manuals, locales.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
         "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/usr/share/locale/*
  container=$(bah from scratch)
  mountpoint=$(bah mount "$container")
  cp -a "$rootfs"/. "$mountpoint"/
  bah umount "$container" >/dev/null
  bah config --env LANG=C.UTF-8 --cmd /bin/bash "$container"
  replaced_base=$(bah images --quiet --no-trunc "$BASE" 2>/dev/null || true)
  bah commit --quiet --rm "$container" "$BASE" >/dev/null
  container=""
  rm -rf "$rootfs"
fi

# --- the build context: the package's source and its dependencies as wheels ---------------
context=$work/context
mkdir -p "$context"
cp Containerfile pyproject.toml constraints.txt README.md "$context"/
tar -C . --exclude=__pycache__ --exclude='*.egg-info' -cf - src | tar -C "$context" -xf -
# The wheels are fetched for this machine's python3, so it must be the one the image runs.
if [[ $(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') != 3.11 ]]; then
  echo "python3 here is not 3.11, the CPython of Debian $SUITE: build on Debian $SUITE" >&2
  exit 1
fi
tools=$work/tools
python3 -m venv "$tools"
# The project's wheel is not needed (the image builds it from source); its dependencies,
# pip and the build backend are, all for the CPython 3.11 that bookworm ships, like this host.
"$tools"/bin/python -m pip wheel --quiet --quiet --wheel-dir "$context"/wheels \
  --constraint constraints.txt . pip 'setuptools>=77' wheel
rm -f "$context"/wheels/dynamic_prefix_operator-*.whl

echo "building $IMAGE" >&2
previous=$(bah images --quiet --no-trunc "$IMAGE" 2>/dev/null || true)
bah bud --quiet --isolation chroot --build-arg VERSION="$version" \
  -f "$context/Containerfile" -t "$IMAGE" "$context" >/dev/null

# Images this build replaced would stay behind untagged, each a full copy on vfs storage
# (the old base goes once no image is built on it any more).
current=$(bah images --quiet --no-trunc "$IMAGE")
for old in "$previous" "$replaced_base"; do
  if [[ -n $old && $old != "$current" ]]; then
    bah rmi "$old" >/dev/null 2>&1 || true
  fi
done

size=$(bah images --format '{{.Size}}' "$IMAGE" | head -n1)
echo "image size: $size; built in $((SECONDS - started)) s" >&2
echo "$size"
echo "$IMAGE"
