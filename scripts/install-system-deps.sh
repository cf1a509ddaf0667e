#!/usr/bin/env bash
# Installs the Debian 12 packages the project, its tests and its demo need.
# Idempotent: a second run installs nothing and takes a second or two.
set -euo pipefail

PACKAGES=(
  # the test control plane (kube-apiserver is built from Debian's source package)
  etcd-server golang-go rsync golang-github-modern-go-reflect2-dev openssl
  # real network peers for the tests and the demo
  iproute2 radvd kea-dhcp6-server ndisc6
  # a second RA sender and a second delegating server (dnsmasq-base has no service)
  dnsmasq-base isc-dhcp-server
  # BGP routers on the other end of the cluster's speaker: the documented router configs
  # (docs/router/) run against real FRR (zebra + bgpd) and BIRD 2 (tests/bgp)
  frr bird2
  # python tooling
  python3-venv
)

# kubectl: Debian's kubernetes-client (1.20) unless one is installed already (some images
# carry a newer kubectl from another repository, which the Debian package would collide with).
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # A first install on a fresh machine has been seen to stop half-way in dpkg;
  # finishing the configuration and trying once more has always completed it.
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    dpkg --configure -a
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Debian starts these daemons on install; the tests run their own instances.
for svc in etcd radvd kea-dhcp6-server isc-dhcp-server frr bird; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
  pkill -x "$svc" >/dev/null 2>&1 || true
done
