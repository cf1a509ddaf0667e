#!/usr/bin/env bash
# The local demo: a real control plane on this machine, the DynamicPrefix CRD, the user
# guide's example, and what the operator computes from it. Cleans up on exit and Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m testbed.demo "$@"
