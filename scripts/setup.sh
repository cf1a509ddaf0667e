#!/usr/bin/env bash
# Everything the demo and the tests need on a fresh Debian 12 machine, idempotently:
# Debian packages, the project's virtualenv (.venv), and the test control plane binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then
  scripts/install-system-deps.sh
else
  echo "not root: skipping Debian packages (run scripts/install-system-deps.sh as root once)" >&2
fi

# The virtualenv is rebuilt when the dependency pins change.
stamp=.venv/.installed-$(cat pyproject.toml testbed/pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "setting up .venv (about a minute, once)" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e ./testbed
  rm -f .venv/.installed-*
  touch "$stamp"
fi

scripts/build-kube-apiserver.sh >/dev/null
