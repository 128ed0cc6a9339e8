#!/usr/bin/env bash
# Installs the peer libraries into their own virtual environments, never into the
# project's:
#   ../peers-venv     MFGLib 0.3.0 and OpenSpiel 2.0.2 (PEERS_VENV overrides); MFGLib
#                     pulls a CUDA build of torch (about 5.6 GB);
#   ../benchmfg-venv  Bench-MFG 0.1.3 (PyPI bench-mfg-suite; BENCHMFG_VENV overrides),
#                     which pins its own JAX.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${PEERS_VENV:-$root/peers-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q mfglib==0.3.0 open-spiel==2.0.2
echo "MFGLib and OpenSpiel installed in $venv"
benchmfg="${BENCHMFG_VENV:-$root/benchmfg-venv}"
python3 -m venv "$benchmfg"
"$benchmfg/bin/pip" install -q bench-mfg-suite==0.1.3
echo "Bench-MFG installed in $benchmfg"
