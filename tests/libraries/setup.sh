#!/usr/bin/env bash
# A Python with the libraries whose own test suites tests/test_libraries_on_compat.py runs (their
# dependencies stay out of the project's environment: pnpxai pulls torchvision, timm, shap, gensim).
# Usage: bash tests/libraries/setup.sh [folder]   (default .venv-libs), then
#        PYATTRIB_LIBS_PYTHON=.venv-libs/bin/python python -m pytest tests/test_libraries_on_compat.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${1:-.venv-libs}"
python -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# the CPU build of torch first, then the libraries at the versions whose tests are copied here
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet torch==2.13.0 captum==0.9.0 torch_geometric==2.8.1 pnpxai==0.1.4 pytest
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
cd "$VENV" && echo "$(pwd)/bin/python"   # an absolute path: the suites run from their own folders
