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
# MFAX is not on PyPI: a source copy, and Python 3.10 (its parameter dataclasses hold jax
# arrays as defaults, which Python 3.11+ refuses). ../mfax-src, ../mfax-venv310.
mfax_src="${MFAX_SRC:-$root/mfax-src}"
[ -d "$mfax_src" ] || git clone -q https://github.com/CWibault/mfax "$mfax_src"
mfax_venv="${MFAX_VENV:-$root/mfax-venv310}"
python310="${PYTHON310:-python3.10}"
if ! "$python310" -c pass 2>/dev/null; then   # a pyenv shim without 3.10 selected: use the install
    python310="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 2>/dev/null | tail -1)"
    [ -n "$python310" ] || { echo "MFAX needs Python 3.10: set PYTHON310" >&2; exit 1; }
fi
"$python310" -m venv "$mfax_venv"
"$mfax_venv/bin/pip" install -q --upgrade pip
"$mfax_venv/bin/pip" install -q "jax==0.5.3" "jaxlib==0.5.3" "flax==0.10.5" "chex==0.1.86" \
    "distrax==0.1.5" "optax==0.2.3" "numpy==1.26.4" gymnasium matplotlib seaborn
"$mfax_venv/bin/pip" install -q --no-deps "gymnax==0.0.8"   # its gym pin backtracks for ever
echo "MFAX: PYTHONPATH=$mfax_src $mfax_venv/bin/python"
