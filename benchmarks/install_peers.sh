#!/usr/bin/env bash
# Installs the peer libraries (MFGLib 0.3.0, OpenSpiel 2.0.2) into their own virtual
# environment, never into the project's. Default location: ../peers-venv (override with
# PEERS_VENV). MFGLib pulls a CUDA build of torch (about 5.6 GB).
set -euo pipefail
venv="${PEERS_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/peers-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q mfglib==0.3.0 open-spiel==2.0.2
echo "peers installed in $venv"
