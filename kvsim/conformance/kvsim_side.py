"""kvsim's side of the conformance harness: the ``vllm`` scheduler on a case, with one record per step.

The records are read from the scheduler around each ``schedule()`` call (a wrapper set on the scheduler
instances of this run only: the default path is untouched): which requests got prefill tokens and how many,
which decoded, which were preempted, and which were admitted with how many prefix-cached tokens. The run has
``fast_forward=False`` (every step goes through ``schedule()``); a second run with fast-forward on must give
the same per-request results, and ``run_kvsim`` says whether it did.

Steps are counted as vLLM's driver counts them: with a constant step cost of ``STEP_S`` (a power of two, so
that sums of steps are exact), a step's start time divided by ``STEP_S`` is its start in steps. A ``schedule()``
that returns no batch (its preemptions emptied the replica; the engine schedules again at once) is not a step:
its preemptions go with the next step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kvsim.simulator import run as run_module
from kvsim.simulator.config import SimConfig
from kvsim.simulator.cost.constant import ConstantCostModel
from kvsim.simulator.kv_groups import kv_cache_layout
from kvsim.simulator.specs import ModelSpec
from kvsim.traces.request import Provenance, Request, Trace

STEP_S = 1 / 64  # exact in binary: a step's start time / STEP_S is an exact integer
MODEL = "qwen2.5-7b"  # any model: the cost is constant; its context and small KV per token fit every case
GPU = "h200"


def trace_of(case: dict) -> Trace:
    """The case's requests as a kvsim trace; row ``i`` is request index ``i``."""
    specs = case["requests"]
    for i, spec in enumerate(specs):
        assert spec["index"] == i, "case requests must be listed by index, 0, 1, ..."
    steps = [spec["arrival_step"] for spec in specs]
    assert steps == sorted(steps), "case requests must be listed in arrival order"
    requests = [
        Request(
            request_id=spec["index"],
            arrival_s=spec["arrival_step"] * STEP_S,
            num_prompt_tokens=spec["num_prompt_tokens"],
            num_output_tokens=spec["num_output_tokens"],
            prefix_block_hashes=tuple(spec["chunk_hashes"]) if spec.get("chunk_hashes") else None,
        )
        for spec in specs
    ]
    return Trace.from_requests(requests, Provenance(source=f"conformance case {case['name']}"))


def model_of(case: dict) -> str:
    """``MODEL``, or for a case with ``layer_types`` a tiny Hugging Face config of those layers and window (a
    ``config.json`` under the temp folder, named by its contents), which kvsim reads as any ``--model`` path."""
    c = case["config"]
    if not c.get("layer_types"):
        return MODEL
    hf = {
        "model_type": "mistral",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": len(c["layer_types"]),
        "vocab_size": 32000,
        "max_position_embeddings": max(1 << 20, c["max_model_len"]),
        "torch_dtype": "float16",
        "sliding_window": c["sliding_window"],
        "layer_types": list(c["layer_types"]),
    }
    text = json.dumps(hf, sort_keys=True)
    folder = (
        Path(tempfile.gettempdir()) / f"kvsim-conformance-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    )
    folder.mkdir(exist_ok=True)
    path = folder / "config.json"
    if not path.exists():
        tmp = folder / f"config.json.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, path)
    return str(path)


def sim_config(case: dict, *, fast_forward: bool) -> SimConfig:
    """kvsim's config for the case: the same options as vLLM's, and exactly ``num_blocks`` KV blocks (of the
    model's KV-cache groups' block size, ``kv_groups.py``: every group's block holds ``layers_per_group``
    layers)."""
    c = case["config"]
    model_name = model_of(case)
    model = ModelSpec.from_name(model_name)
    block_bytes = kv_cache_layout(model, 1, c["block_size"]).block_bytes
    allocator = (
        f"paged:block_size={c['block_size']},enable_prefix_caching={str(c['enable_prefix_caching']).lower()}"
    )
    return SimConfig(
        model=model_name,
        gpu=GPU,
        scheduler="vllm",
        allocator=allocator,
        max_num_seqs=c["max_num_seqs"],
        max_num_batched_tokens=c["max_num_batched_tokens"],
        max_model_len=c["max_model_len"],
        enable_chunked_prefill=c["enable_chunked_prefill"],
        long_prefill_token_threshold=c["long_prefill_token_threshold"],
        watermark=c.get("watermark"),
        scheduler_reserve_full_isl=c.get("scheduler_reserve_full_isl", True),
        kv_capacity_bytes=c["num_blocks"] * block_bytes,
        fast_forward=fast_forward,
    )


class StepRecorder:
    """Wraps one scheduler instance's ``schedule`` and ``_preempt`` to keep a record per step."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.steps: list[dict] = []
        self.admitted_cached: dict[int, int] = {}
        self._preempted: list[int] = []
        schedule, preempt = scheduler.schedule, scheduler._preempt

        def recording_preempt(victim, *args, **kwargs):
            self._preempted.append(victim.index)
            return preempt(victim, *args, **kwargs)

        def recording_schedule(now_s):
            running_before = {id(r) for r in scheduler.running}
            batch = schedule(now_s)
            if batch is not None:
                self._record(now_s, batch, running_before)
            return batch

        scheduler._preempt = recording_preempt
        scheduler.schedule = recording_schedule

    def _record(self, now_s: float, batch, running_before: set[int]) -> None:
        sched = self.scheduler
        start = now_s / STEP_S
        assert start == int(start), f"step start {now_s} s is not a whole number of steps"
        prefill = {str(req.index): n for req, n in sched._prefills}
        prefilling = {id(req) for req, _ in sched._prefills}
        decoding = [
            r
            for r in sched.running
            if id(r) not in prefilling and r.num_computed_tokens >= r.num_prefill_tokens
        ]
        decode = sorted((str(r.index) for r in decoding), key=int)
        if sum(r.num_seqs for r in decoding) != batch.num_decode_seqs:
            decode = None  # the budget took only some decodes: compared by count (which ones is not kept)
        admitted = {str(r.index): r.num_computed_tokens for r in sched.running if id(r) not in running_before}
        self.steps.append(
            {
                "start": int(start),
                "prefill": {k: prefill[k] for k in sorted(prefill, key=int)},
                "decode": decode,
                "num_decode_seqs": batch.num_decode_seqs,
                # as a sorted list: vLLM reports a step's preemptions as a set
                "preempted": [str(i) for i in sorted(self._preempted)],
                "admitted": {k: admitted[k] for k in sorted(admitted, key=int)},
            }
        )
        self._preempted = []


@contextmanager
def recording_schedulers() -> Iterator[list[StepRecorder]]:
    """Inside the block, every scheduler that ``simulate`` makes is recorded (``StepRecorder``)."""
    recorders: list[StepRecorder] = []
    make = run_module._make_scheduler

    def make_recorded(*args, **kwargs):
        scheduler = make(*args, **kwargs)
        recorders.append(StepRecorder(scheduler))
        return scheduler

    run_module._make_scheduler = make_recorded
    try:
        yield recorders
    finally:
        run_module._make_scheduler = make


def _request_results(result, case: dict) -> dict[str, dict]:
    rec = result.recorder
    out = {}
    for spec in case["requests"]:
        i = spec["index"]
        first, finish = rec.first_token_s[i], rec.finish_s[i]
        out[str(i)] = {
            # a step ending at t started at t - STEP_S
            "first_token_step_end": None if np.isnan(first) else float(first) / STEP_S,
            "finish_step_end": None if np.isnan(finish) else float(finish) / STEP_S,
            "num_preemptions": int(rec.num_preemptions[i]),
            "num_cached_tokens": int(rec.num_cached_tokens[i]),
            "rejected": rec.rejected_reason.get(i),
        }
    return out


def run_kvsim(case: dict) -> dict:
    """kvsim's step records and per-request results for ``case`` (the format of ``vllm_driver.py``'s), plus
    ``fast_forward_mismatches``: requests whose results differ with fast-forward on (should be none)."""
    trace = trace_of(case)
    cost = ConstantCostModel(step_s=STEP_S)
    with recording_schedulers() as recorders:
        result = run_module.simulate(sim_config(case, fast_forward=False), trace, cost_model=cost)
    (recorder,) = recorders
    num_blocks = recorder.scheduler.allocator.num_blocks
    assert num_blocks == case["config"]["num_blocks"], f"kvsim has {num_blocks} blocks, not the case's"
    steps = recorder.steps
    step_at_end = {s["start"] + 1: k for k, s in enumerate(steps)}
    requests = _request_results(result, case)
    for info in requests.values():
        for name in ("first_token", "finish"):
            end = info.pop(f"{name}_step_end")
            info[f"{name}_step"] = None if end is None else step_at_end.get(int(end))
    fast = run_module.simulate(sim_config(case, fast_forward=True), trace, cost_model=cost)
    fast_requests = _request_results(fast, case)
    slow_requests = _request_results(result, case)
    mismatches = sorted((k for k in slow_requests if slow_requests[k] != fast_requests[k]), key=int)
    return {
        "side": "kvsim",
        "steps": steps,
        "requests": requests,
        "fast_forward_mismatches": mismatches,
        "config": dataclasses.asdict(sim_config(case, fast_forward=False)),
    }
