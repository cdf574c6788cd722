"""How much the vllm-blog ShareGPT rows' throughput at QPS inf depends on the output lengths' shape.

    python scripts/validation/sharegpt_shape_check.py            # every ShareGPT row of the development set
    python scripts/validation/sharegpt_shape_check.py --seed 3

The post published the means of its 500 ShareGPT requests (202 input, 179 output tokens), not their lengths.
``kvsim reproduce vllm-blog`` draws 500 rows of kvsim's bundled ShareGPT length table and scales them to those
means (``reproduce_blog.workload_lengths``). With all 500 requests sent at once, throughput is 500 over the
makespan, and the makespan depends on how the outputs spread around their mean: the longest ones decode at the
end in an ever smaller batch. This script runs each ShareGPT row, exactly as the reproduction configures it
(``row_config``, ``make_trace``), under a few output-length shapes with the same means, and prints kvsim ÷
published for each, with the shape's coefficient of variation (std ÷ mean) of output lengths:

- ``kvsim``: the reproduction's own lengths (scaled by the whole table's means: its 500 have means near 202 / 179);
- ``vLLM filter``: 500 rows of the same table that pass vLLM's ``benchmark_serving`` ShareGPT filter (prompt and
  output at least 4 tokens, prompt at most 1,024, prompt + output at most 2,048), scaled to the means (of the 500);
- ``constant``: every request 202 / 179 tokens (no spread);
- ``exponential``: the filtered prompts, outputs exponential with mean 179 (spread 1).

A row whose ratio moves more across plausible shapes than its bound (±10%) cannot be pinned by the published
means alone.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from kvsim.cli import reproduce_blog
from kvsim.simulator import simulate
from kvsim.traces import load_length_table

MEAN_PROMPT, MEAN_OUTPUT = reproduce_blog.SHAREGPT_MEANS
SHAPES = ("kvsim", "vLLM filter", "constant", "exponential")


def _scaled(lengths: np.ndarray, mean: float) -> np.ndarray:
    return np.maximum(1, np.rint(lengths * (mean / float(lengths.mean())))).astype(np.int64)


def shape_lengths(shape: str, seed: int, num: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) tokens of ``num`` requests of one shape (module docstring), drawn with ``seed``."""
    if shape == "kvsim":
        return reproduce_blog.workload_lengths("sharegpt", seed)
    if shape == "constant":
        return np.full(num, round(MEAN_PROMPT), dtype=np.int64), np.full(
            num, round(MEAN_OUTPUT), dtype=np.int64
        )
    table = load_length_table("sharegpt")
    prompt, output = table.num_prompt_tokens, table.num_output_tokens
    keep = (prompt >= 4) & (output >= 4) & (prompt <= 1024) & (prompt + output <= 2048)
    rows = np.random.default_rng(seed).choice(np.flatnonzero(keep), num, replace=False)
    prompt_s = _scaled(prompt[rows], MEAN_PROMPT)
    if shape == "vLLM filter":
        return prompt_s, _scaled(output[rows], MEAN_OUTPUT)
    if shape == "exponential":
        draws = np.random.default_rng(seed + 1).exponential(MEAN_OUTPUT, num)
        return prompt_s, np.maximum(1, np.rint(draws)).astype(np.int64)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def ratios(seed: int = 0) -> list[dict]:
    """One entry per (ShareGPT row, shape): the row, the shape, its output CV, kvsim's and the published
    throughput at QPS inf and their ratio."""
    out = []
    rows = [r for r in reproduce_blog.load_rows()["rows"] if r["workload"] == "sharegpt"]
    for shape in SHAPES:
        prompt, output = shape_lengths(shape, seed, reproduce_blog.NUM_REQUESTS)
        cv = float(np.std(output) / np.mean(output))
        for row in rows:
            config = reproduce_blog.row_config(row, seed, "vllm-v0")
            trace = reproduce_blog.make_trace(prompt, output, math.inf, seed)
            kvsim = simulate(config, trace, keep_timeline=False).summary["throughput"]["requests_per_s"]
            published = row["throughput_req_s_at_qps_inf"]
            out.append(
                {
                    "row": f"{row['model']} {row['gpu']} TP {row['tp']}",
                    "shape": shape,
                    "output_cv": cv,
                    "kvsim_req_s": kvsim,
                    "published_req_s": published,
                    "ratio": kvsim / published,
                }
            )
    return out


def table(entries: list[dict]) -> str:
    rows = sorted({e["row"]: None for e in entries})
    shapes = list(dict.fromkeys(e["shape"] for e in entries))
    cv = {e["shape"]: e["output_cv"] for e in entries}
    by = {(e["row"], e["shape"]): e["ratio"] for e in entries}
    head = f"{'kvsim / published, throughput at QPS inf':32s}" + "".join(
        f"{s + f' (cv {cv[s]:.2f})':>24s}" for s in shapes
    )
    lines = [head] + [f"{r:32s}" + "".join(f"{by[(r, s)]:>24.3f}" for s in shapes) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(
        f"ShareGPT rows of the vllm-blog set, {reproduce_blog.NUM_REQUESTS} requests at QPS inf, means "
        f"{MEAN_PROMPT:g} / {MEAN_OUTPUT:g} tokens, seed {args.seed}; output cv = std / mean of output lengths"
    )
    print(table(ratios(args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
