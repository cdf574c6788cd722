"""kvsim: a discrete-event simulator of LLM serving with a kernel-calibrated cost model.

The repository's top-level folders install under the ``kvsim`` namespace, because their bare names
(``simulator``, ``traces``, ...) collide with existing PyPI packages.
"""

from pathlib import Path

from setuptools import setup

# folder in the repository -> import name
FOLDER_TO_PACKAGE = {
    "kvsim": "kvsim",
    "simulator": "kvsim.simulator",
    "calibrate": "kvsim.calibrate",
    "kernels": "kvsim.kernels",
    "traces": "kvsim.traces",
    "reports": "kvsim.reports",
}


def _packages() -> list[str]:
    """Every folder with an __init__.py below the mapped folders, as its import name."""
    import os

    packages = []
    for folder, package in FOLDER_TO_PACKAGE.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" in files:
                rel = os.path.relpath(root, folder)
                packages.append(package if rel == "." else package + "." + rel.replace(os.sep, "."))
    return packages


setup(
    name="kvsim",
    version="0.1.0",
    description="Discrete-event simulator of LLM serving: KV-cache allocators, schedulers, capacity planning",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=_packages(),
    package_dir={package: folder for folder, package in FOLDER_TO_PACKAGE.items()},
    package_data={
        "kvsim.traces": ["data/*.csv", "data/*.jsonl", "data/README.md", "data/SHA256SUMS"],
        "kvsim.calibrate": [
            "profiles/*.json",
            "profiles/*.csv",
            "profiles/vidur/*.json",
            "profiles/vidur/README.md",
            "profiles/vidur/LICENSE",
            "profiles/vidur/SHA256SUMS",
            "profiles/vidur/compute/*/*/*/*.csv.gz",
            "profiles/vidur/network/*/*.csv.gz",
        ],
        "kvsim.cli": ["data/*.json", "data/README.md"],
    },
    install_requires=[
        "simpy>=4.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "click>=8.1",
        "plotly>=5.20",
        "tqdm>=4.66",
        "pyyaml>=6.0",  # YAML config and sweep files (kvsim/config_file.py)
        "tomli>=2.0; python_version < '3.11'",
    ],
    extras_require={
        "kernels": ["torch>=2.4", "triton>=3.1"],
        "test": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6", "playwright>=1.40"],
        "ray": ["ray>=2.9"],
    },
    entry_points={"console_scripts": ["kvsim=kvsim.cli:main"]},
)
