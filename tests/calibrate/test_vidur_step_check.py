"""scripts/validation/vidur_step_check.py: one prefill step's StepTime parts beside Vidur's measured operators
(the evidence for the 70B A100 prefill-heavy row in docs/validation.md), and its refusal of what Vidur did not
measure."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from kvsim.calibrate import vidur
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import make_cost_model
from kvsim.simulator.engine_overhead import gpu_time_only

SCRIPT = Path(__file__).parents[2] / "scripts" / "validation" / "vidur_step_check.py"
MODEL_FILE = "compute/a100/meta-llama/Meta-Llama-3-70B/mlp.csv.gz"
GEMM_COLUMNS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


@pytest.fixture(scope="module")
def script(load_script):
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def default_output(script):
    """stdout of the script's main at its defaults: Llama-3-70B, A100-80GB, TP 4, 17 prompts of 462 tokens."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert script.main([]) == 0
    return out.getvalue()


def _table(output: str) -> dict[str, list[str]]:
    """label -> [kvsim ms, Vidur ms, kvsim/Vidur], from the header line to the step line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("part "))
    end = next(i for i, line in enumerate(lines) if line.startswith("step (GPU)"))
    return {
        cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines[start + 1 : end + 1])
    }


def test_the_default_step_is_the_70b_a100_rows_full_prefill_with_every_part(default_output):
    assert default_output.startswith(
        "llama-3-70b on a100-80gb, TP 4: one prefill-only step of 17 x 462 = 7,854 tokens\n"
    )
    table = _table(default_output)
    assert list(table) == [
        "GEMMs (QKV, O, MLP up, MLP down) x 80",
        "all-reduce 2 x 80, 122.7 MiB each",  # 7,854 tokens x 8,192 hidden x 2 bytes
        "RMSNorm 2 x 80",
        "rotary 1 x 80",
        "activation 1 x 80",
        "residual add 2 x 80",
        "embedding",
        "prefill attention x 80 (not timed by Vidur)",
        "final RMSNorm (not timed by Vidur)",
        "LM head (not timed by Vidur)",
        "KV-cache write (not timed by Vidur)",  # the A100 profile's: borrowed from the roofline
        "sampling (not timed by Vidur)",
        "step (GPU)",
    ]
    assert all(len(cells) == 3 for cells in table.values())
    for label, (kvsim_ms, vidur_ms, ratio) in table.items():
        if "not timed" in label:  # kvsim's value in both columns, no ratio
            assert vidur_ms == f"({kvsim_ms})" and ratio == "-"
        else:
            k, v = float(kvsim_ms), float(vidur_ms)  # each rounded to 0.1 ms, the ratio to 0.001
            assert (k - 0.05) / (v + 0.05) - 5e-4 <= float(ratio) <= (k + 0.05) / (v - 0.05) + 5e-4
    # the step is the sum of its parts, to the rounding of the printed milliseconds
    step_kvsim, step_vidur = (float(x) for x in table.pop("step (GPU)")[:2])
    assert sum(float(c[0]) for c in table.values()) == pytest.approx(step_kvsim, abs=0.05 * len(table))
    vidur_column = [float(c[1].strip("()")) for c in table.values()]
    assert sum(vidur_column) == pytest.approx(step_vidur, abs=0.05 * len(table))


def test_the_gemm_ratio_is_kvsims_cost_model_over_vidurs_file(default_output):
    lens = (462,) * 17
    cost = gpu_time_only(make_cost_model("llama-3-70b", "a100-80gb", 4))
    kvsim_s = cost.step_time(Batch(prefill_q_lens=lens, prefill_kv_lens=lens)).gemm_s
    # Vidur: the four GEMMs' medians (ms) per layer at TP 4, repeated token counts averaged, linear in tokens
    by_tokens: dict[int, list[float]] = {}
    for row in vidur.read_csv(MODEL_FILE):
        if row["num_tensor_parallel_workers"] == "4":
            layer_ms = sum(float(row[f"time_stats.{op}.median"]) for op in GEMM_COLUMNS)
            by_tokens.setdefault(int(row["num_tokens"]), []).append(layer_ms)
    tokens = sorted(by_tokens)
    layer_ms = np.interp(7854, tokens, [np.mean(by_tokens[t]) for t in tokens])
    vidur_s = 80 * layer_ms * 1e-3
    gemm = _table(default_output)["GEMMs (QKV, O, MLP up, MLP down) x 80"]
    assert gemm == [f"{kvsim_s * 1e3:.1f}", f"{vidur_s * 1e3:.1f}", f"{kvsim_s / vidur_s:.3f}"]


def test_the_all_reduce_beyond_vidurs_largest_message_says_how_it_was_extrapolated(default_output):
    line = next(line for line in default_output.splitlines() if line.startswith("all-reduce: "))
    assert "network/a100_dgx/all_reduce.csv.gz, 4 GPUs in one node" in line
    assert "122.7 MiB: BEYOND Vidur's measured range (largest message 64.0 MiB)" in line
    assert "least-squares line of its" in line and "measurements at 32-64 MiB" in line


def test_the_budget_is_the_published_rows_run_time_spread_over_its_steps_of_this_shape(default_output):
    lines = default_output.splitlines()
    budget = next(i for i, line in enumerate(lines) if line.startswith("budget: the prefill-heavy row"))
    numbers = re.search(
        r"takes ([\d.]+) s: (\d+) steps of this shape at ([\d.]+) ms .* and ([\d.]+) s of everything else",
        lines[budget],
    )
    duration_s, num_steps, step_ms, other_s = (float(x) for x in numbers.groups())
    assert duration_s == pytest.approx(num_steps * step_ms / 1e3 + other_s, abs=0.01)
    assert "The published 11.35 req/s is a 44.05 s run" in lines[budget + 1]  # 500 requests / 11.35 req/s


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "llama-2-7b"], "Vidur measured no llama-2-7b on a100-80gb"),
        (["--tp", "3"], "Vidur measured llama-3-70b at TP [1, 2, 4, 8], not at TP 3"),
        (["--gpu", "h200"], "Vidur measured no operators on h200"),
    ],
)
def test_a_model_tp_or_gpu_vidur_did_not_measure_is_refused_in_one_line(script, capsys, argv, message):
    assert script.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"Error: {message}") and captured.err.count("\n") == 1
