#!/usr/bin/env bash
# Build the venv that runs vLLM's real scheduler on CPU for `kvsim conformance vllm` (issue 20).
#
#   scripts/conformance/build_vllm_venv.sh [VENV_DIR]      (default: .venv-vllm at the repository root)
#
# What it installs, and why only this:
#   - torch==2.13.0: the CPU build on this machine's local disk. vLLM 0.34.0 pins torch 2.14 (a multi-GB CUDA
#     build from PyPI); its scheduler does not need it and runs on 2.13.0+cpu. Never install an unpinned torch.
#   - vllm==0.34.0 with --no-deps: the wheel alone, so that pip does not pull vLLM's GPU stack.
#   - the packages that importing vLLM's config and scheduler modules needs (found by trial: import, add what
#     is missing), at the versions vLLM's metadata asks for where it pins them.
# Takes about 1.5 minutes and 2.8 GB. Prints the venv's python path on the last line when it succeeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${1:-.venv-vllm}"
VLLM_VERSION=0.34.0

python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q --no-deps "vllm==$VLLM_VERSION"
"$PY" -m pip install -q \
  "packaging" "pydantic>=2.12.0" "regex" "numpy" "psutil" "pyzmq>=25.0.0" "requests>=2.33.0" "aiohttp>=3.14.4" \
  "transformers<5.23.0,>=5.16.1" "huggingface_hub>=2.0.0" "pillow>=13.0.0" "pybase64" "cachetools" "cbor2" \
  "msgspec" "cloudpickle" "uvloop" "py-cpuinfo" "prometheus_client>=0.18.0" "llguidance<1.8.0,>=1.7.0" \
  "einops" "pyyaml" "xgrammar==0.2.8"

# The check: vLLM's scheduler and config import and build on the CPU torch.
CUDA_VISIBLE_DEVICES="" VLLM_TARGET_DEVICE=cpu HF_HUB_OFFLINE=1 "$PY" scripts/conformance/vllm_driver.py --check
echo "$PY"
