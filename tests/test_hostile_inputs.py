"""Every command refuses hostile input the same way: exit status 2, one line ``Error: ...`` that names the input,
and no traceback (kvsim/errors.py; issue 19).

Each case runs ``python -m kvsim ...`` in a subprocess, so what is checked is what a user sees: the exit status,
stderr, and nothing that leaks from an exception. ``{tmp}`` in an argument is the case's folder, which holds the
files of ``FILES`` (a tiny trace, empty files, a folder where a file is expected, config files with wrong types,
Hugging Face configs kvsim cannot model). Each case stops within a few seconds: most before reading a trace,
the rest within a tiny one. A case marked xfail(strict=True) names the file where the fault still is: when it is
fixed the case fails as XPASS, and the mark goes. Python exception names in the output (a leaked ``TypeError`` in
a sweep's error column) fail a case as a traceback does.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

TINY_TRACE = """\
request_id,arrival_s,num_prompt_tokens,num_output_tokens
0,0.0,100,10
1,0.5,200,20
2,1.0,300,30
"""
LLAMA = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 512,
    "vocab_size": 1000,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}
SIM = "trace = '{tmp}/tiny.csv'\n"  # the head of a simulate config file; the case adds one key

FILES: dict[str, str | bytes | None] = {  # name -> text; None: a folder
    "tiny.csv": TINY_TRACE,
    "empty.csv": "",
    "empty.jsonl": "",
    "empty.json": "",
    "empty.toml": "",
    "binary.csv": b"\x00\xff\xfe\x00garbage",
    "afile": "not a folder\n",
    "folder": None,
    "header_only.csv": "request_id,arrival_s,num_prompt_tokens,num_output_tokens\n",
    "negative.csv": "request_id,arrival_s,num_prompt_tokens,num_output_tokens\n0,0.0,-5,10\n",
    "nan.csv": "request_id,arrival_s,num_prompt_tokens,num_output_tokens\n0,nan,5,10\n",
    # simulate --config: wrong types (issue 19 item 6 and its tracebacks)
    "rate_text.toml": SIM + "rate = 'fast'\n",
    "rate_list.yaml": "trace: '{tmp}/tiny.csv'\nrate: [1, 2]\n",
    "allocator_int.toml": SIM + "allocator = 5\n",
    "allocator_empty.toml": SIM + "allocator = []\n",
    "num_requests_bool.yaml": "trace: '{tmp}/tiny.csv'\nnum_requests: true\n",
    "num_requests_text.toml": SIM + "num_requests = '100'\n",
    "num_requests_float.toml": SIM + "num_requests = 2.5\n",
    "cut_s_text.toml": SIM + "cut_s = '10'\n",
    "trace_int.toml": "trace = 5\n",
    "out_int.toml": SIM + "out = 5\n",
    "report_text.toml": SIM + "report = 'yes'\n",
    "seed_text.toml": SIM + "seed = 'x'\n",
    "max_num_seqs_text.toml": SIM + "max_num_seqs = '8'\n",
    "unknown_key.toml": SIM + "max_num_seq = 8\n",
    "bad.toml": "trace = \n",
    "bad.yaml": "trace: [unclosed\n  rate: 1\n",
    "list_top.yaml": "- a\n- b\n",
    # plan --config
    "plan_num_requests_bool.yaml": "trace: '{tmp}/tiny.csv'\nslo: {ttft_p99: 2s}\nnum_requests: true\n",
    "plan_num_requests_text.toml": "trace = '{tmp}/tiny.csv'\nslo = ['ttft_p99=2s']\nnum_requests = '100'\n",
    "plan_num_requests_float.toml": "trace = '{tmp}/tiny.csv'\nslo = ['ttft_p99=2s']\nnum_requests = 2.5\n",
    "plan_rel_tol_text.toml": "trace = '{tmp}/tiny.csv'\nslo = ['ttft_p99=2s']\nrel_tol = 'x'\n",
    "plan_tp_text.toml": "trace = '{tmp}/tiny.csv'\nslo = ['ttft_p99=2s']\ntp = ['a']\n",
    "plan_progress_text.toml": "trace = '{tmp}/tiny.csv'\nslo = ['ttft_p99=2s']\nprogress = 'no'\n",
    # sweep spec files
    "sweep_no_grid.toml": "[base]\ntrace = '{tmp}/tiny.csv'\n",
    "sweep_grid_list.toml": "grid = [1, 2]\n",
    "sweep_rate_list.toml": "[base]\ntrace = '{tmp}/tiny.csv'\nrate = [1, 2]\n[grid]\nmax_num_seqs = [8]\n",
    "sweep_num_requests_float.toml": (
        "[base]\ntrace = '{tmp}/tiny.csv'\nnum_requests = 2.5\n[grid]\nmax_num_seqs = [8]\n"
    ),
    "sweep_seed_text.toml": "seed = 'x'\n[base]\ntrace = '{tmp}/tiny.csv'\n[grid]\nmax_num_seqs = [8]\n",
    # Hugging Face config.json files kvsim cannot model (issue 19 item 5)
    "int4.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "hqq", "bits": 4}}),
    "moe.json": json.dumps({**LLAMA, "num_local_experts": 8}),
    "mla.json": json.dumps({**LLAMA, "kv_lora_rank": 512}),
    "layer_types.json": json.dumps({**LLAMA, "layer_types": ["full_attention", "sliding_attention"]}),
    "dtype_int8.json": json.dumps({**LLAMA, "torch_dtype": "int8"}),
    "model_type_bert.json": json.dumps({**LLAMA, "model_type": "bert"}),
    "heads_text.json": json.dumps({**LLAMA, "num_attention_heads": "4"}),
    "list.json": "[1, 2]",
    # calibrate --fit-only
    "wrong_columns.csv": "a,b,c\n1,2,3\n",
}

MEMORY_LIMIT_BYTES = 8 * 2**30
TINY = ["--trace", "{tmp}/tiny.csv"]
SIMULATE = ["simulate", *TINY, "--num-requests", "2"]
PLAN = ["plan", *TINY, "--slo", "ttft_p99=2s", "--no-progress"]
# Python exceptions whose names must not reach a user, in an error line or a results table
LEAKED = re.compile(
    r"\b(TypeError|ValueError|AttributeError|KeyError|IndexError|OverflowError|ZeroDivisionError|"
    r"UnicodeDecodeError|MemoryError|RecursionError|NotADirectoryError|FileNotFoundError|"
    r"PermissionError|IsADirectoryError|OSError|AssertionError)\b"
)

CASES: list[tuple[str, list[str]] | tuple[str, list[str], str]] = [
    # --- simulate: options ---
    ("simulate-rate-text", [*SIMULATE, "--rate", "fast"]),
    ("simulate-rate-nan", [*SIMULATE, "--rate", "nan"]),
    ("simulate-rate-negative", [*SIMULATE, "--rate", "-1"]),
    ("simulate-rate-inf", [*SIMULATE, "--rate", "inf"]),
    ("simulate-rate-huge", [*SIMULATE, "--rate", "1e400"]),
    ("simulate-num-requests-zero", ["simulate", *TINY, "--num-requests", "0"]),
    ("simulate-num-requests-negative", ["simulate", *TINY, "--num-requests", "-5"]),
    ("simulate-num-requests-float", ["simulate", *TINY, "--num-requests", "2.5"]),
    ("simulate-cut-s-negative", ["simulate", *TINY, "--cut-s", "-1"]),
    ("simulate-cut-s-nan", ["simulate", *TINY, "--cut-s", "nan"]),
    ("simulate-no-trace", ["simulate"]),
    ("simulate-trace-unknown", ["simulate", "--trace", "no-such-trace"]),
    ("simulate-trace-missing-file", ["simulate", "--trace", "{tmp}/absent.csv"]),
    ("simulate-trace-folder", ["simulate", "--trace", "{tmp}/folder"]),
    ("simulate-trace-empty", ["simulate", "--trace", "{tmp}/empty.csv"]),
    ("simulate-trace-empty-jsonl", ["simulate", "--trace", "{tmp}/empty.jsonl"]),
    ("simulate-trace-header-only", ["simulate", "--trace", "{tmp}/header_only.csv"]),
    ("simulate-trace-binary", ["simulate", "--trace", "{tmp}/binary.csv"]),
    ("simulate-trace-negative-tokens", ["simulate", "--trace", "{tmp}/negative.csv"]),
    ("simulate-trace-nan-arrival", ["simulate", "--trace", "{tmp}/nan.csv"]),
    ("simulate-trace-format-unknown", [*SIMULATE, "--trace-format", "parquet"]),
    ("simulate-model-unknown", [*SIMULATE, "--model", "llama-9"]),
    ("simulate-model-folder-without-config", [*SIMULATE, "--model", "{tmp}/folder"]),
    ("simulate-model-empty-json", [*SIMULATE, "--model", "{tmp}/empty.json"]),
    ("simulate-model-json-list", [*SIMULATE, "--model", "{tmp}/list.json"]),
    ("simulate-model-heads-text", [*SIMULATE, "--model", "{tmp}/heads_text.json"]),
    ("simulate-model-unknown-quantization", [*SIMULATE, "--model", "{tmp}/int4.json"]),
    ("simulate-model-moe", [*SIMULATE, "--model", "{tmp}/moe.json"]),
    ("simulate-model-mla", [*SIMULATE, "--model", "{tmp}/mla.json"]),
    ("simulate-model-layer-types", [*SIMULATE, "--model", "{tmp}/layer_types.json"]),
    ("simulate-model-dtype-int8", [*SIMULATE, "--model", "{tmp}/dtype_int8.json"]),
    ("simulate-model-type-bert", [*SIMULATE, "--model", "{tmp}/model_type_bert.json"]),
    ("simulate-gpu-unknown", [*SIMULATE, "--gpu", "v100"]),
    ("simulate-tp-zero", [*SIMULATE, "--tp", "0"]),
    ("simulate-tp-not-dividing", [*SIMULATE, "--tp", "3"]),
    ("simulate-num-replicas-negative", [*SIMULATE, "--num-replicas", "-1"]),
    ("simulate-allocator-unknown", [*SIMULATE, "--allocator", "magic"]),
    ("simulate-allocator-bad-int", [*SIMULATE, "--allocator", "paged:block_size=abc"]),
    ("simulate-allocator-zero-block", [*SIMULATE, "--allocator", "paged:block_size=0"]),
    ("simulate-allocator-nan-block", [*SIMULATE, "--allocator", "paged:block_size=nan"]),
    ("simulate-allocator-bad-size", [*SIMULATE, "--allocator", "vattention:page_size=3KiB"]),
    ("simulate-allocator-huge-size", [*SIMULATE, "--allocator", "vattention:page_size=1e400"]),
    ("simulate-allocator-bad-bool", [*SIMULATE, "--allocator", "paged:enable_prefix_caching=maybe"]),
    ("simulate-allocator-unknown-option", [*SIMULATE, "--allocator", "paged:blocksize=16"]),
    ("simulate-max-num-seqs-zero", [*SIMULATE, "--max-num-seqs", "0"]),
    (
        "simulate-budget-below-context",
        [*SIMULATE, "--no-enable-chunked-prefill", "--max-num-batched-tokens", "1"],
    ),
    (
        "simulate-v0-budget-below-context",
        [*SIMULATE, "--scheduler", "vllm-v0", "--max-num-batched-tokens", "1"],
    ),
    ("simulate-swap-without-space", [*SIMULATE, "--preemption-mode", "swap", "--swap-space-gib", "0"]),
    ("simulate-swap-space-nan", [*SIMULATE, "--swap-space-gib", "nan"]),
    ("simulate-swap-space-inf", [*SIMULATE, "--swap-space-gib", "inf"]),
    ("simulate-kv-capacity-over-gpu", [*SIMULATE, "--kv-capacity-bytes", str(10**15)]),
    ("simulate-kv-capacity-huge", [*SIMULATE, "--kv-capacity-bytes", "9" * 40]),
    ("simulate-kv-capacity-negative", [*SIMULATE, "--kv-capacity-bytes", "-1"]),
    ("simulate-utilization-over-one", [*SIMULATE, "--gpu-memory-utilization", "1.5"]),
    ("simulate-utilization-nan", [*SIMULATE, "--gpu-memory-utilization", "nan"]),
    ("simulate-watermark-nan", [*SIMULATE, "--watermark", "nan"]),
    ("simulate-waiting-served-ratio-nan", [*SIMULATE, "--waiting-served-ratio", "nan"]),
    ("simulate-slo-nan", [*SIMULATE, "--slo-ttft-s", "nan"]),
    ("simulate-slo-negative", [*SIMULATE, "--slo-tpot-s", "-1"]),
    ("simulate-activation-reserve-negative", [*SIMULATE, "--activation-reserve-bytes", "-1"]),
    ("simulate-model-does-not-fit", [*SIMULATE, "--model", "llama-2-70b", "--gpu", "l4"]),
    ("simulate-profile-missing", [*SIMULATE, "--profile", "{tmp}/absent.json"]),
    ("simulate-profile-folder", [*SIMULATE, "--profile", "{tmp}/folder"]),
    ("simulate-profile-empty", [*SIMULATE, "--profile", "{tmp}/empty.json"]),
    ("simulate-max-new-tokens-text", [*SIMULATE, "--scheduler", "tgi", "--max-new-tokens", "lots"]),
    ("simulate-tgi-option-on-vllm", [*SIMULATE, "--max-batch-size", "8"]),
    ("simulate-report-without-out", [*SIMULATE, "--report"]),
    ("simulate-out-under-a-file", [*SIMULATE, "--out", "{tmp}/afile/runs"]),
    ("simulate-out-is-a-file", [*SIMULATE, "--out", "{tmp}/afile"]),
    # --- simulate --config ---
    ("simulate-config-missing", ["simulate", "--config", "{tmp}/absent.toml"]),
    ("simulate-config-folder", ["simulate", "--config", "{tmp}/folder"]),
    ("simulate-config-empty", ["simulate", "--config", "{tmp}/empty.toml"]),
    ("simulate-config-bad-toml", ["simulate", "--config", "{tmp}/bad.toml"]),
    ("simulate-config-bad-yaml", ["simulate", "--config", "{tmp}/bad.yaml"]),
    ("simulate-config-yaml-list", ["simulate", "--config", "{tmp}/list_top.yaml"]),
    ("simulate-config-binary", ["simulate", "--config", "{tmp}/binary.csv"]),
    ("simulate-config-rate-text", ["simulate", "--config", "{tmp}/rate_text.toml"]),
    ("simulate-config-rate-list", ["simulate", "--config", "{tmp}/rate_list.yaml"]),
    ("simulate-config-allocator-int", ["simulate", "--config", "{tmp}/allocator_int.toml"]),
    ("simulate-config-allocator-empty", ["simulate", "--config", "{tmp}/allocator_empty.toml"]),
    ("simulate-config-num-requests-bool", ["simulate", "--config", "{tmp}/num_requests_bool.yaml"]),
    ("simulate-config-num-requests-text", ["simulate", "--config", "{tmp}/num_requests_text.toml"]),
    ("simulate-config-num-requests-float", ["simulate", "--config", "{tmp}/num_requests_float.toml"]),
    ("simulate-config-cut-s-text", ["simulate", "--config", "{tmp}/cut_s_text.toml"]),
    ("simulate-config-trace-int", ["simulate", "--config", "{tmp}/trace_int.toml"]),
    ("simulate-config-out-int", ["simulate", "--config", "{tmp}/out_int.toml"]),
    ("simulate-config-report-text", ["simulate", "--config", "{tmp}/report_text.toml"]),
    ("simulate-config-seed-text", ["simulate", "--config", "{tmp}/seed_text.toml"]),
    ("simulate-config-max-num-seqs-text", ["simulate", "--config", "{tmp}/max_num_seqs_text.toml"]),
    ("simulate-config-unknown-key", ["simulate", "--config", "{tmp}/unknown_key.toml"]),
    # --- sweep ---
    ("sweep-nothing", ["sweep", "--out", "{tmp}/sw"]),
    ("sweep-grid-no-equals", ["sweep", "--grid", "rate", "--out", "{tmp}/sw"]),
    ("sweep-grid-bad-range", ["sweep", "--grid", "rate=10:1:1", "--out", "{tmp}/sw"]),
    ("sweep-grid-huge-range", ["sweep", "--grid", "rate=1:1e9:1", "--out", "{tmp}/sw"]),
    ("sweep-grid-unknown-field", ["sweep", "--grid", "speed=1,2", "--set", "trace=x", "--out", "{tmp}/sw"]),
    ("sweep-no-trace", ["sweep", "--grid", "rate=1,2", "--out", "{tmp}/sw"]),
    ("sweep-set-no-equals", ["sweep", "--grid", "rate=1,2", "--set", "trace", "--out", "{tmp}/sw"]),
    (
        "sweep-jobs-zero",
        [
            "sweep",
            "--grid",
            "max_num_seqs=8",
            "--set",
            "trace={tmp}/tiny.csv",
            "--jobs",
            "0",
            "--out",
            "{tmp}/sw",
            "--no-progress",
        ],
    ),
    (
        "sweep-every-point-fails",
        [
            "sweep",
            "--grid",
            "max_num_seqs=0",
            "--set",
            "trace={tmp}/tiny.csv",
            "--out",
            "{tmp}/sw",
            "--no-progress",
        ],
    ),
    ("sweep-spec-missing", ["sweep", "{tmp}/absent.toml", "--out", "{tmp}/sw"]),
    ("sweep-spec-folder", ["sweep", "{tmp}/folder", "--out", "{tmp}/sw"]),
    ("sweep-spec-empty", ["sweep", "{tmp}/empty.toml", "--out", "{tmp}/sw"]),
    ("sweep-spec-no-grid", ["sweep", "{tmp}/sweep_no_grid.toml", "--out", "{tmp}/sw"]),
    ("sweep-spec-grid-list", ["sweep", "{tmp}/sweep_grid_list.toml", "--out", "{tmp}/sw"]),
    ("sweep-spec-seed-text", ["sweep", "{tmp}/sweep_seed_text.toml", "--out", "{tmp}/sw"]),
    (
        "sweep-spec-rate-list",
        ["sweep", "{tmp}/sweep_rate_list.toml", "--out", "{tmp}/sw", "--no-progress"],
    ),
    (
        "sweep-spec-num-requests-float",
        ["sweep", "{tmp}/sweep_num_requests_float.toml", "--out", "{tmp}/sw", "--no-progress"],
    ),
    (
        "sweep-out-under-a-file",
        [
            "sweep",
            "--grid",
            "max_num_seqs=8",
            "--set",
            "trace={tmp}/tiny.csv",
            "--out",
            "{tmp}/afile/sw",
            "--no-progress",
        ],
    ),
    # --- plan ---
    ("plan-no-slo", ["plan", *TINY]),
    ("plan-slo-unknown", [*PLAN[:3], "--slo", "speed_p99=2s", "--no-progress"]),
    ("plan-slo-bad-value", [*PLAN[:3], "--slo", "ttft_p99=fast", "--no-progress"]),
    ("plan-slo-no-equals", [*PLAN[:3], "--slo", "ttft_p99", "--no-progress"]),
    ("plan-target-rate-text", [*PLAN, "--target-rate", "lots"]),
    ("plan-target-rate-negative", [*PLAN, "--target-rate", "-3"]),
    ("plan-target-rate-nan", [*PLAN, "--target-rate", "nan"]),
    ("plan-price-bad", [*PLAN, "--price", "a100-80gb=cheap"]),
    ("plan-num-requests-zero", [*PLAN, "--num-requests", "0"]),
    ("plan-rel-tol-negative", [*PLAN, "--rel-tol", "-1"]),
    ("plan-rel-tol-nan", [*PLAN, "--rel-tol", "nan"]),
    ("plan-start-rate-negative", [*PLAN, "--start-rate", "-1"]),
    ("plan-start-rate-zero", [*PLAN, "--start-rate", "0"]),  # was taken as unset: the trace's own rate
    ("plan-rel-tol-above-one", [*PLAN, "--rel-tol", "5"]),
    ("plan-jobs-zero", [*PLAN, "--jobs", "0"]),
    ("plan-trace-missing", ["plan", "--trace", "{tmp}/absent.csv", "--slo", "ttft_p99=2s", "--no-progress"]),
    ("plan-trace-empty", ["plan", "--trace", "{tmp}/empty.csv", "--slo", "ttft_p99=2s", "--no-progress"]),
    ("plan-set-rate", [*PLAN, "--set", "rate=3"]),
    ("plan-gpu-unknown", [*PLAN, "--gpu", "v100"]),
    ("plan-config-missing", ["plan", "--config", "{tmp}/absent.toml"]),
    ("plan-config-folder", ["plan", "--config", "{tmp}/folder"]),
    ("plan-config-num-requests-bool", ["plan", "--config", "{tmp}/plan_num_requests_bool.yaml"]),
    ("plan-config-num-requests-text", ["plan", "--config", "{tmp}/plan_num_requests_text.toml"]),
    ("plan-config-num-requests-float", ["plan", "--config", "{tmp}/plan_num_requests_float.toml"]),
    ("plan-config-rel-tol-text", ["plan", "--config", "{tmp}/plan_rel_tol_text.toml"]),
    ("plan-config-tp-text", ["plan", "--config", "{tmp}/plan_tp_text.toml"]),
    ("plan-config-progress-text", ["plan", "--config", "{tmp}/plan_progress_text.toml"]),
    ("plan-config-unknown-key", ["plan", "--config", "{tmp}/unknown_key.toml"]),
    ("plan-out-under-a-file", [*PLAN, "--num-requests", "3", "--out", "{tmp}/afile/plan"]),
    # --- report ---
    ("report-missing", ["report", "{tmp}/absent", "--out", "{tmp}/r.html"]),
    ("report-empty-folder", ["report", "{tmp}/folder", "--out", "{tmp}/r.html"]),
    ("report-empty-csv", ["report", "{tmp}/empty.csv", "--out", "{tmp}/r.html"]),
    ("report-not-a-run", ["report", "{tmp}/tiny.csv", "--out", "{tmp}/r.html"]),
    ("report-empty-json", ["report", "{tmp}/empty.json", "--out", "{tmp}/r.html"]),
    ("report-binary", ["report", "{tmp}/binary.csv", "--out", "{tmp}/r.html"]),
    ("report-no-paths", ["report", "--out", "{tmp}/r.html"]),
    # --- traces ---
    ("traces-list-extra-argument", ["traces", "list", "extra"]),
    ("traces-stats-missing", ["traces", "stats", "{tmp}/absent.csv"]),
    ("traces-stats-folder", ["traces", "stats", "{tmp}/folder"]),
    ("traces-stats-empty", ["traces", "stats", "{tmp}/empty.csv"]),
    ("traces-stats-binary", ["traces", "stats", "{tmp}/binary.csv"]),
    ("traces-stats-rate-nan", ["traces", "stats", "{tmp}/tiny.csv", "--rate", "nan"]),
    ("traces-stats-rate-negative", ["traces", "stats", "{tmp}/tiny.csv", "--rate", "-1"]),
    ("traces-stats-format-unknown", ["traces", "stats", "{tmp}/tiny.csv", "--format", "parquet"]),
    ("traces-stats-cv-negative", ["traces", "stats", "sharegpt", "--arrival", "gamma", "--cv", "-1"]),
    ("traces-stats-arrivals-missing", ["traces", "stats", "sharegpt", "--arrivals-from", "{tmp}/absent.csv"]),
    ("traces-generate-zero", ["traces", "generate", "{tmp}/g.csv", "--num-requests", "0"]),
    (
        "traces-generate-huge",
        ["traces", "generate", "{tmp}/g.csv", "--num-requests", str(10**12)],
    ),
    ("traces-generate-rate-zero", ["traces", "generate", "{tmp}/g.csv", "--rate", "0"]),
    ("traces-generate-rate-nan", ["traces", "generate", "{tmp}/g.csv", "--rate", "nan"]),
    ("traces-generate-rate-inf", ["traces", "generate", "{tmp}/g.csv", "--rate", "inf"]),
    ("traces-generate-prompt-bad", ["traces", "generate", "{tmp}/g.csv", "--prompt", "huge"]),
    ("traces-generate-prompt-negative", ["traces", "generate", "{tmp}/g.csv", "--prompt", "fixed:-5"]),
    ("traces-generate-prompt-nan", ["traces", "generate", "{tmp}/g.csv", "--prompt", "lognormal:1000:nan"]),
    ("traces-generate-n-zero", ["traces", "generate", "{tmp}/g.csv", "--n", "0"]),
    ("traces-generate-prefix-negative", ["traces", "generate", "{tmp}/g.csv", "--prefix-groups", "-1"]),
    ("traces-generate-to-unknown", ["traces", "generate", "{tmp}/g.csv", "--to", "parquet"]),
    ("traces-generate-out-folder", ["traces", "generate", "{tmp}/folder"]),
    ("traces-generate-out-under-a-file", ["traces", "generate", "{tmp}/afile/g.csv"]),
    (
        "traces-generate-lengths-missing",
        ["traces", "generate", "{tmp}/g.csv", "--lengths-from", "{tmp}/absent"],
    ),
    ("traces-convert-missing", ["traces", "convert", "{tmp}/absent.csv", "{tmp}/c.jsonl"]),
    (
        "traces-convert-window-reversed",
        ["traces", "convert", "{tmp}/tiny.csv", "{tmp}/c.jsonl", "--window", "5", "1"],
    ),
    (
        "traces-convert-subsample-zero",
        ["traces", "convert", "{tmp}/tiny.csv", "{tmp}/c.jsonl", "--subsample", "0"],
    ),
    (
        "traces-convert-max-requests-zero",
        ["traces", "convert", "{tmp}/tiny.csv", "{tmp}/c.jsonl", "--max-requests", "0"],
    ),
    # --- reproduce ---
    ("reproduce-unknown", ["reproduce", "vllm-fig99"]),
    ("reproduce-fig2-num-requests-zero", ["reproduce", "vllm-fig2", "--num-requests", "0"]),
    (
        "reproduce-fig13-num-requests-negative",
        ["reproduce", "vllm-fig13", "--num-requests", "-1"],
    ),
    ("reproduce-rates-num-requests-text", ["reproduce", "vllm-rates", "--num-requests", "many"]),
    (
        "reproduce-tgi-model-unknown",
        ["reproduce", "tgi-vs-vllm", "--model", "llama-9", "--num-requests", "5"],
    ),
    ("reproduce-tgi-tp-zero", ["reproduce", "tgi-vs-vllm", "--tp", "0", "--num-requests", "5"]),
    (
        "reproduce-fig2-out-under-a-file",
        ["reproduce", "vllm-fig2", "--num-requests", "5", "--out", "{tmp}/afile/r"],
    ),
    # --- calibrate (no GPU: --fit-only, or refusals before any measurement) ---
    ("calibrate-fit-only-missing", ["calibrate", "--fit-only", "{tmp}/absent.csv"]),
    ("calibrate-fit-only-folder", ["calibrate", "--fit-only", "{tmp}/folder"]),
    ("calibrate-fit-only-empty", ["calibrate", "--fit-only", "{tmp}/empty.csv"]),
    ("calibrate-fit-only-wrong-columns", ["calibrate", "--fit-only", "{tmp}/wrong_columns.csv"]),
    ("calibrate-fit-only-binary", ["calibrate", "--fit-only", "{tmp}/binary.csv"]),
    ("calibrate-device-unknown", ["calibrate", "--device", "tpu"]),
    ("calibrate-budget-negative", ["calibrate", "--device", "cpu", "--budget-s", "-1"]),
    ("calibrate-budget-nan", ["calibrate", "--device", "cpu", "--budget-s", "nan"]),
    ("calibrate-tp-text", ["calibrate", "--device", "cpu", "--tp", "a,b"]),
    ("calibrate-model-unknown", ["calibrate", "--device", "cpu", "--model", "llama-9"]),
]


def _params() -> list:
    params = []
    for case in CASES:
        name, args, *xfail = case
        marks = [pytest.mark.xfail(strict=True, reason=xfail[0])] if xfail else []
        params.append(pytest.param(args, id=name, marks=marks))
    return params


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        if text is None:
            path.mkdir()
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    return tmp_path


def _limit_memory() -> None:
    """A case that tries to build something huge fails inside 8 GiB of address space, on a shared machine."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


@pytest.mark.parametrize("args", _params())
def test_hostile_input_is_refused_with_one_error_line(args, case_dir):
    argv = [arg.replace("{tmp}", str(case_dir)) for arg in args]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "kvsim", *argv],
        capture_output=True,
        text=True,
        cwd=case_dir,
        env=env,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not LEAKED.search(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    # one error line, the last: what came before is click's usage lines, or what the command said while it ran
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
