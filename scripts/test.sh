#!/usr/bin/env bash
# The whole test suite: static checks (ruff, mypy --strict, import layers), then pytest
# against a real kube-apiserver + etcd and real radvd/Kea in network namespaces.
# Extra arguments go to pytest, e.g. scripts/test.sh -k calc -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== import layers" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
exec .venv/bin/pytest "$@"
