"""How well a profile predicts kernels it was not fitted on: ``python -m kvsim.calibrate.crosscheck``.

A profile is fitted on one model's shapes (its GEMMs, and its attention heads with a twin of another KV-head
count). The simulator uses it for any model on that GPU. This scores it on measurements taken on other
models' shapes: each row's time against the term the cost model would use for it (the pooled ``gemm`` fit for
another model's GEMMs, the per-op fits for the profiled model's own), as MAPE per term and the median of
predicted / measured (its bias: ×0.5 predicts half the time). Kernels are compared as timed, alone, so the
profile's launch overlap does not enter. ``--profile roofline:GPU`` scores a GPU's datasheet roofline instead.

    python -m kvsim.calibrate.crosscheck --profile calibrate/profiles/profile-h200.json \\
        calibrate/profiles/validation/measurements-h200-*.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from kvsim.calibrate.fit import mape_pct
from kvsim.calibrate.measurements import load_measurements
from kvsim.errors import KvsimError
from kvsim.simulator.cost import profile_from_spec
from kvsim.simulator.cost.profile import GEMM_OPS, Profile

FEATURES = ("flops", "bytes", "kv_bytes", "num_seqs", "num_blocks")


def score(
    profile: Profile, rows: list[dict[str, Any]], model: str | None
) -> dict[str, tuple[int, float, float]]:
    """{term of the rows: (points, MAPE %, median of predicted / measured)} of ``profile``'s predictions for
    measurement ``rows`` taken on ``model``'s shapes. Rows of terms the profile cannot predict (VMM tables,
    layers) are left out."""
    by_term: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        name = row["term"]
        if name.startswith("gemm.") and name[5:] in GEMM_OPS:
            term = profile.gemm_term(name[5:], model)
        elif name.startswith("attn_"):
            term = profile.terms[name]
        else:
            continue
        features = {k: float(row.get(k, 0.0)) for k in FEATURES}
        predicted, measured = by_term.setdefault(name, ([], []))
        predicted.append(term.predict(**features))
        measured.append(float(row["median_s"]))
    scores = {}
    for name, (predicted, measured) in sorted(by_term.items()):
        predicted_s, measured_s = np.array(predicted), np.array(measured)
        ratio = float(np.median(predicted_s / measured_s))
        scores[name] = (len(measured), mape_pct(predicted_s, measured_s), ratio)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.calibrate.crosscheck", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--profile",
        required=True,
        help="profile JSON to score, or roofline:GPU for a GPU's datasheet roofline (e.g. roofline:h100-sxm)",
    )
    parser.add_argument("measurements", nargs="+", type=Path, help="measurements CSVs taken on other shapes")
    args = parser.parse_args(argv)
    try:
        profile = profile_from_spec(args.profile)
        tables = []
        for path in args.measurements:
            measurements = load_measurements(path)
            tables.append(
                (
                    path,
                    measurements.meta.get("model"),
                    score(profile, measurements.rows, measurements.meta.get("model")),
                )
            )
    except KvsimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    fitted = (
        "from the datasheet" if profile.source == "roofline" else f"fitted on {profile.model or '?'} shapes"
    )
    print(f"profile {args.profile} ({fitted}): MAPE % of its predictions, x median predicted/measured:")
    terms = sorted({name for _, _, scores in tables for name in scores})
    labels = [f"{model or '?'} ({path.stem})" for path, model, _ in tables]
    width = max(len("measured on"), *map(len, labels)) + 2
    print(f"{'measured on':{width}}" + "".join(f"{name:>24}" for name in terms))
    for label, (_, _, scores) in zip(labels, tables):
        cells = "".join(_cell(scores.get(name)) for name in terms)
        print(f"{label:{width}}{cells}")
    return 0


def _cell(scored: tuple[int, float, float] | None) -> str:
    if scored is None:
        return f"{'-':>24}"
    n, mape, ratio = scored
    return f"{f'{mape:.1f} x{ratio:.2f} (n={n})':>24}"


if __name__ == "__main__":
    sys.exit(main())
