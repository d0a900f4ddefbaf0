#!/usr/bin/env bash
# Create .venv and install gotd with its test extras. torch is installed first and pinned so that pip
# takes the CPU build instead of pulling several GB of CUDA packages; on a GPU machine set
# GOTD_TORCH_SPEC to the torch build you want (e.g. "torch==2.13.0" from the CUDA index). GOTD_EXTRAS picks
# the optional parts (default: all of them: hf, lm, toxicity, notebooks, ray, dev).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "${GOTD_TORCH_SPEC:-torch==2.13.0}"
# -qq: setuptools prints an information-only block on every editable install ("be careful with folders named
# like your package"); it says nothing about this install, and errors still show.
.venv/bin/python -m pip install -qq -e ".[${GOTD_EXTRAS:-all}]"
# Strip notebook outputs on every `git add` (the filter named in .gitattributes); harmless outside git.
if [ -d .git ] && [ -x .venv/bin/nbstripout ]; then .venv/bin/nbstripout --install || true; fi
echo "gotd installed in .venv ($(.venv/bin/python -c 'import gotd; print(gotd.__version__)'))"
