#!/usr/bin/env bash
# Builds kube-apiserver from Debian's `kubernetes` source package, once.
# The binary is cached outside the checkout, keyed by version, so later runs
# (and later clones) start in seconds. Prints the directory that holds
# `kube-apiserver` and `etcd` (the KUBEBUILDER_ASSETS layout).
#
# When KUBEBUILDER_ASSETS is set and already holds both binaries, nothing is built.
set -euo pipefail

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

VERSION=1.20.2
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dynamic-prefix/kube-$VERSION"
ASSETS="$CACHE/bin"
if [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/etcd" ]]; then
  echo "$ASSETS"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # two parallel first runs build once
if [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/etcd" ]]; then
  echo "$ASSETS"
  exit 0
fi

SRC_LIST=/etc/apt/sources.list.d/dynamic-prefix-src.sources
if ! ls "$CACHE"/kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=${uri:-http://deb.debian.org/debian}
    cat >"$SRC_LIST" <<SRC
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq >&2
  fi
  (cd "$CACHE" && apt-get source --download-only -qq kubernetes >&2)
fi

echo "building kube-apiserver $VERSION (about 5 minutes on 2 cores, once)" >&2
WORK="$CACHE/build"
rm -rf "$WORK"
mkdir -p "$WORK"
tar -xzf "$CACHE"/kubernetes_*.orig.tar.gz -C "$WORK"
cd "$WORK"/kubernetes-*
# Go 1.19 crashes the reflect2 v1.0.1 vendored by Kubernetes 1.20 (SIGSEGV on the
# first JSON encode of a map); Debian's reflect2 1.0.2 is API-compatible and fixes it.
rsync -a --delete --exclude go.mod /usr/share/gocode/src/github.com/modern-go/reflect2/ \
  vendor/github.com/modern-go/reflect2/
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
env GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$CACHE/home" GOCACHE="$CACHE/gocache" \
  make WHAT=cmd/kube-apiserver >&2
mkdir -p "$ASSETS"
install -m 0755 _output/local/bin/linux/*/kube-apiserver "$ASSETS/kube-apiserver"
ln -sfn "$(command -v etcd || echo /usr/bin/etcd)" "$ASSETS/etcd"
cd "$CACHE"
rm -rf "$WORK" "$CACHE/gocache"
echo "$ASSETS"
