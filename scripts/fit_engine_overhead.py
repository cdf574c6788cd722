"""Refit vllm-v0's fitted engine terms (simulator/engine_overhead.py) on the vllm-blog development set.

    python scripts/fit_engine_overhead.py h100 [--max-evals 60]     # the shipped fit: the 6 H100 rows
    python scripts/fit_engine_overhead.py all                        # the check on all 12 rows

Least squares over log(kvsim / published) of every throughput point and of the TPOT points the fit may use
(`fitted_point` in kvsim/cli/reproduce_blog.py leaves out those that no 256-sequence engine can reach, and
overloaded ones), by Nelder-Mead over log(step_s, per_seq_s, inner_step_s), starting from the shipped values.
Each evaluation simulates every row (about a minute on 2 cores); prints each evaluation and the best point.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from unittest import mock

import numpy as np
from scipy.optimize import minimize

import kvsim.simulator.engine_overhead as eo
from kvsim.cli.reproduce_blog import fitted_point, load_rows, row_ratios

NAMES = ("step_s", "per_seq_s", "inner_step_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", choices=("h100", "a100", "all"), help="which GPU's rows to fit on")
    parser.add_argument("--max-evals", type=int, default=60)
    args = parser.parse_args()
    rows = [r for r in load_rows()["rows"] if args.rows == "all" or r["gpu"].startswith(args.rows)]
    base = eo.VLLM_V0

    def residuals(x: np.ndarray) -> np.ndarray:
        over = base.with_values(**dict(zip(NAMES, np.exp(x))))
        with mock.patch.dict(eo.ENGINE_OVERHEADS, {"vllm-v0": over}):
            out = []
            for row in rows:
                for key, ratio in row_ratios(row, 0, "vllm-v0").items():
                    if key.startswith("tpot") and not fitted_point(row, key.split()[1]):
                        continue
                    out.append(math.log(ratio))
        return np.array(out)

    def loss(x: np.ndarray) -> float:
        r = residuals(x)
        value = float(r @ r)
        print(json.dumps({n: float(v) for n, v in zip(NAMES, np.exp(x))}), round(value, 4), flush=True)
        return value

    x0 = np.log([base.params()[n].value for n in NAMES])
    start = time.time()
    res = minimize(
        loss, x0, method="Nelder-Mead", options={"maxfev": args.max_evals, "xatol": 0.02, "fatol": 1e-3}
    )
    best = {n: float(v) for n, v in zip(NAMES, np.exp(res.x))}
    print("BEST", json.dumps(best), f"sum of squares {res.fun:.4f}", f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
