"""Root test configuration: where Triton kernels run, and the `gpu` marker.

- Without KVSIM_DEVICE=cuda, Triton kernels run on CPU tensors in Triton's interpreter: TRITON_INTERPRET=1 is
  set here, before any test module imports triton (triton reads it when a kernel is decorated).
- With KVSIM_DEVICE=cuda, kernels compile for the GPU and `gpu`-marked tests (full-size shapes) run too.
  Without it, `gpu` tests are skipped. KVSIM_DEVICE=cuda on a machine where torch sees no GPU is an error,
  so a GPU session cannot silently test nothing.
- The `device` fixture is the torch device name tests allocate on: "cuda" or "cpu".

torch is imported only when KVSIM_DEVICE=cuda, so test runs that never touch kernels stay light.
"""

from __future__ import annotations

import os

import pytest

ON_GPU = os.environ.get("KVSIM_DEVICE", "cpu").lower() == "cuda"
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    if ON_GPU:
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("KVSIM_DEVICE=cuda but torch.cuda.is_available() is False")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ON_GPU:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU: run with KVSIM_DEVICE=cuda")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def device() -> str:
    """Where kernel tests allocate tensors: "cuda" under KVSIM_DEVICE=cuda, else "cpu" (interpreter)."""
    return "cuda" if ON_GPU else "cpu"


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path)``: a script (scripts/, benchmarks/) imported as a module for its functions, under its
    file's stem. Dataclasses look their module up in ``sys.modules`` while the script runs, so it is there for
    that time and taken out after."""
    import importlib.util
    import sys
    from pathlib import Path

    def load(path: Path):
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, spec.name, module)
            spec.loader.exec_module(module)
        return module

    return load
