"""vLLM's side of the conformance harness: runs ``scripts/conformance/vllm_driver.py`` in the vLLM venv.

The venv is ``$KVSIM_VLLM_VENV`` if set, else ``.venv-vllm`` at the repository root (built by
``scripts/conformance/build_vllm_venv.sh``). The cases go to the driver as one JSON file and come back as one:
vLLM is imported once for all of them (about 10 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from kvsim.errors import KvsimError

VENV_ENV = "KVSIM_VLLM_VENV"
REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = REPO_ROOT / "scripts" / "conformance" / "vllm_driver.py"
BUILDER = REPO_ROOT / "scripts" / "conformance" / "build_vllm_venv.sh"
DEFAULT_VENV = REPO_ROOT / ".venv-vllm"
# vLLM's CPU platform, no GPU, no network (issue 20)
DRIVER_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "VLLM_TARGET_DEVICE": "cpu",
    "HF_HUB_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
}


def venv_python(venv: str | Path | None = None) -> Path | None:
    """The vLLM venv's python: ``venv``, else ``$KVSIM_VLLM_VENV``, else ``.venv-vllm`` if it exists; None when
    none is configured. A venv that is named (argument or variable) but has no python is an error."""
    named = venv if venv is not None else os.environ.get(VENV_ENV) or None
    path = Path(named) if named else DEFAULT_VENV
    python = path / "bin" / "python"
    if python.exists():
        return python
    if named:
        raise KvsimError(
            f"vLLM venv {path} has no bin/python; build it with {BUILDER.relative_to(REPO_ROOT)} {path}"
        )
    return None


def missing_venv_message() -> str:
    return (
        f"no vLLM venv: build one with {BUILDER.relative_to(REPO_ROOT)} (about 1.5 min, 2.8 GB) or set "
        f"{VENV_ENV} to one"
    )


def run_vllm(cases: list[dict], python: Path, *, timeout_s: float = 1800) -> list[dict]:
    """vLLM's step records for each case, in order."""
    if not DRIVER.exists():
        raise KvsimError(
            f"the vLLM driver {DRIVER} is missing: run the conformance harness from a kvsim checkout"
        )
    with tempfile.TemporaryDirectory(prefix="kvsim-conformance-") as tmp:
        case_path, out_path = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        case_path.write_text(json.dumps({"cases": cases}))
        proc = subprocess.run(
            [str(python), str(DRIVER), str(case_path), str(out_path)],
            env={**os.environ, **DRIVER_ENV},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise KvsimError(f"the vLLM driver failed (exit {proc.returncode}) with {python}:\n{tail}")
        return json.loads(out_path.read_text())["results"]
