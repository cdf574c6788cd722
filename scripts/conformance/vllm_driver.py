"""Drive vLLM's real v1 scheduler on CPU with fake model outputs, step by step (issue 20's conformance harness).

Runs inside the vLLM venv (``scripts/conformance/build_vllm_venv.sh``), which has vLLM and torch but not kvsim
or simpy: it reads a case as JSON and writes its step records as JSON, and kvsim (``kvsim.conformance``)
compares them with its own scheduler's.

    python vllm_driver.py CASES.json OUT.json    # {"cases": [...]} -> {"results": [...]}
    python vllm_driver.py --check                # the imports and one tiny case work (the venv builder's test)
    python vllm_driver.py --bench OUT.csv        # CPU time of schedule() + update_from_output() per step

The driver uses vLLM as a library (``vllm.v1.core.sched.scheduler.Scheduler``, as vLLM's own
``tests/v1/core`` do): no model, a KV cache of ``num_blocks + 1`` blocks of one full-attention group (vLLM keeps
block 0 as its null block, so kvsim's N blocks are vLLM's N + 1), and a fake model runner that samples one token
for every scheduled request whose (re)prefill is complete. Requests end by vLLM's own stop check
(``max_tokens`` = the request's output length, ``ignore_eos``).

Time is counted in steps. A request arriving at step ``k`` is added before the first step that starts at or
after ``k``; when nothing is queued or running, the clock jumps to the next arrival (kvsim's rule with a
constant step cost). A ``schedule()`` that schedules no token (every running request preempted) is not a step:
vLLM's engine core runs no model for it; its preemptions are reported with the next step.

Token ids. A prompt token in 512-token chunk ``c`` (Mooncake's ``hash_ids`` granularity) whose chunk has hash
id ``h`` is ``1 + 512 h + (position mod 512)``, so equal hash ids give equal tokens and vLLM's 16-token block
hashes chain exactly as kvsim's trace-derived block identities. Every other token (prompts without hash ids,
their tail past the hashed chunks, and every generated token) is ``OWN_TOKEN_BASE + request index``: different
requests share none of those blocks, as in kvsim.
"""

from __future__ import annotations

import json
import os
import sys
import time

# vLLM's CPU platform with no GPU and no network (issue 20's known facts).
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PYTHONHASHSEED", "0")

CHUNK_TOKENS = 512  # Mooncake hash_ids granularity
OWN_TOKEN_BASE = 1_000_000_000
MAX_HASH_ID = (OWN_TOKEN_BASE - 1) // CHUNK_TOKENS - 1

# A small Llama config: the scheduler needs a ModelConfig, never the weights.
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 1 << 20,
    "rms_norm_eps": 1e-5,
    "torch_dtype": "float16",
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def _model_dir() -> str:
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "kvsim-conformance-llama")
    os.makedirs(path, exist_ok=True)
    config = os.path.join(path, "config.json")
    if not os.path.exists(config):
        with open(config + ".tmp", "w") as f:
            json.dump(LLAMA_CONFIG, f)
        os.replace(config + ".tmp", config)
    return path


def build_scheduler(config: dict):
    """A v1 ``Scheduler`` over ``config['num_blocks'] + 1`` blocks, with the case's scheduler options."""
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.structured_output import StructuredOutputManager

    block_size = config["block_size"]
    num_blocks = config["num_blocks"] + 1  # block 0 is vLLM's null block
    scheduler_kwargs = {
        "max_num_seqs": config["max_num_seqs"],
        "max_num_batched_tokens": config["max_num_batched_tokens"],
        "max_model_len": config["max_model_len"],
        "enable_chunked_prefill": config["enable_chunked_prefill"],
        "long_prefill_token_threshold": config["long_prefill_token_threshold"],
        "is_encoder_decoder": False,
    }
    for name in ("watermark", "scheduler_reserve_full_isl"):
        if config.get(name) is not None:
            scheduler_kwargs[name] = config[name]
    scheduler_config = SchedulerConfig(**scheduler_kwargs)
    model_config = ModelConfig(
        model=_model_dir(),
        skip_tokenizer_init=True,
        dtype="float16",
        seed=0,
        max_model_len=config["max_model_len"],
    )
    cache_config = CacheConfig(block_size=block_size, enable_prefix_caching=config["enable_prefix_caching"])
    vllm_config = VllmConfig(
        scheduler_config=scheduler_config, model_config=model_config, cache_config=cache_config
    )
    kv_cache_config = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=kv_cache_groups(vllm_config, config),
    )
    cache_config.num_gpu_blocks = num_blocks
    return Scheduler(
        vllm_config=vllm_config,
        kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(vllm_config),
        block_size=block_size,
        log_stats=False,
    )


def kv_cache_groups(vllm_config, config: dict) -> list:
    """The KV-cache groups vLLM derives for the case's layers (``get_kv_cache_groups``, as the engine does from
    the model runner's per-layer specs): one full-attention layer without ``layer_types``; with it (and
    ``sliding_window``), one layer per entry, ``sliding_attention`` layers a ``SlidingWindowSpec`` of the
    window, so a hybrid model gets vLLM's own grouping (``_get_kv_cache_groups_uniform_page_size``)."""
    import torch
    from vllm.v1.attention.backends.utils import _DEFAULT_LAYOUT_PREFERENCE, resolve_kv_cache_layout
    from vllm.v1.core.kv_cache_planning import get_kv_cache_groups
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec

    shape = {"block_size": config["block_size"], "num_kv_heads": 1, "head_size": 1, "dtype": torch.float32}
    layer_types = config.get("layer_types") or ["full_attention"]
    specs = {}
    for i, kind in enumerate(layer_types):
        if kind == "sliding_attention":
            specs[f"layers.{i}"] = SlidingWindowSpec(**shape, sliding_window=config["sliding_window"])
        elif kind == "full_attention":
            specs[f"layers.{i}"] = FullAttentionSpec(**shape)
        else:
            raise ValueError(f"layer {i}: unknown layer type {kind!r}")
    # the engine core resolves the layout before it groups the layers (a CPU run's default preference)
    resolve_kv_cache_layout(vllm_config, [[m.name for m in _DEFAULT_LAYOUT_PREFERENCE]], specs.values())
    return get_kv_cache_groups(vllm_config, specs)


def prompt_token_ids(index: int, num_prompt_tokens: int, chunk_hashes: list[int] | None) -> list[int]:
    """The module docstring's token ids for request ``index``."""
    own = OWN_TOKEN_BASE + index
    chunk_hashes = chunk_hashes or []
    tokens = []
    for c, h in enumerate(chunk_hashes):
        start = c * CHUNK_TOKENS
        if start >= num_prompt_tokens:
            break
        if not 0 <= h <= MAX_HASH_ID:
            raise ValueError(f"request {index}: hash id {h} outside [0, {MAX_HASH_ID}]")
        end = min(start + CHUNK_TOKENS, num_prompt_tokens)
        tokens += range(1 + h * CHUNK_TOKENS, 1 + h * CHUNK_TOKENS + end - start)
    tokens += [own] * (num_prompt_tokens - len(tokens))
    return tokens


def make_request(spec: dict, block_hasher):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    index = spec["index"]
    params = SamplingParams(max_tokens=spec["num_output_tokens"], ignore_eos=True)
    return Request(
        request_id=str(index),
        prompt_token_ids=prompt_token_ids(index, spec["num_prompt_tokens"], spec.get("chunk_hashes")),
        sampling_params=params,
        pooling_params=None,
        arrival_time=float(spec["arrival_step"]),
        block_hasher=block_hasher,
    )


def _block_hasher(block_size: int):
    from vllm.utils.hashing import sha256
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

    init_none_hash(sha256)
    return get_request_block_hasher(block_size, sha256)


class Runner:
    """Steps one scheduler through a list of requests, keeping kvsim's step records (``kvsim.conformance``)."""

    def __init__(self, config: dict, requests: list[dict], *, record: bool = True) -> None:
        self.scheduler = build_scheduler(config)
        hasher = _block_hasher(config["block_size"]) if config["enable_prefix_caching"] else None
        self.pending = sorted(requests, key=lambda r: (r["arrival_step"], r["index"]))
        self.hasher = hasher
        self.record = record
        self.steps: list[dict] = []
        self.requests: dict[int, dict] = {}
        self.prefill_target: dict[str, int] = {}  # request -> tokens its current (re)prefill computes
        self.clock = 0
        self.timings: list[
            tuple[int, int, int, float, float]
        ] = []  # (batch reqs, tokens, queued, sched, update)

    def run(self, max_steps: int = 10_000_000) -> None:
        from vllm.v1.outputs import ModelRunnerOutput

        sched = self.scheduler
        pending, next_pending = self.pending, 0
        carried_preempted: list[str] = []
        empty_in_a_row = 0
        while next_pending < len(pending) or sched.has_requests():
            while next_pending < len(pending) and pending[next_pending]["arrival_step"] <= self.clock:
                spec = pending[next_pending]
                next_pending += 1
                sched.add_request(make_request(spec, self.hasher))
                self.requests[spec["index"]] = {
                    "first_token_step": None,
                    "finish_step": None,
                    "num_preemptions": 0,
                    "num_cached_tokens": None,
                }
            if not sched.has_requests():
                self.clock = pending[next_pending]["arrival_step"]
                continue
            running_before = {r.request_id for r in sched.running}
            num_queued = len(sched.waiting)
            t0 = time.process_time()
            out = sched.schedule()
            t1 = time.process_time()
            scheduled = out.num_scheduled_tokens
            preempted = sorted(out.preempted_req_ids or (), key=int)
            sampled = []
            ids = list(scheduled)
            for rid in ids:
                req = sched.requests[rid]
                sampled.append(
                    [OWN_TOKEN_BASE + int(rid)] if req.num_computed_tokens >= req.num_tokens else []
                )
            runner_output = ModelRunnerOutput(req_ids=ids, sampled_token_ids=sampled)
            if out.total_num_scheduled_tokens == 0:
                # No model step: vLLM's engine core skips the model for an empty batch.
                t2 = time.process_time()
                sched.update_from_output(out, runner_output)
                carried_preempted += preempted
                for rid in preempted:
                    self.requests[int(rid)]["num_preemptions"] += 1
                empty_in_a_row += 1
                if empty_in_a_row > 1000:
                    raise RuntimeError(
                        f"vLLM scheduled nothing 1000 times in a row at step {len(self.steps)}"
                    )
                continue
            empty_in_a_row = 0
            step = len(self.steps)
            prefill, decode, admitted = {}, [], {}
            for rid, n in scheduled.items():
                req = sched.requests[rid]
                before = req.num_computed_tokens - n
                if rid not in running_before:  # admitted (or resumed) this step: its prefix-cache hit
                    admitted[rid] = before
                    self.prefill_target[rid] = req.num_tokens
                    info = self.requests[int(rid)]
                    if info["num_cached_tokens"] is None:
                        info["num_cached_tokens"] = before
                if before < self.prefill_target.get(rid, 0):
                    prefill[rid] = n
                else:
                    decode.append(rid)
            for rid in preempted:
                self.requests[int(rid)]["num_preemptions"] += 1
            t2 = time.process_time()
            sched.update_from_output(out, runner_output)
            t3 = time.process_time()
            self.timings.append(
                (len(scheduled), out.total_num_scheduled_tokens, num_queued, t1 - t0, t3 - t2)
            )
            for rid, tokens in zip(ids, sampled):
                if not tokens:
                    continue
                info = self.requests[int(rid)]
                if info["first_token_step"] is None:
                    info["first_token_step"] = step
                req = sched.requests.get(rid)
                if req is None or req.is_finished():
                    info["finish_step"] = step
                    self.prefill_target.pop(rid, None)
            if self.record:
                self.steps.append(
                    {
                        "start": self.clock,
                        "prefill": {k: prefill[k] for k in sorted(prefill, key=int)},
                        "decode": sorted(decode, key=int),
                        "num_decode_seqs": len(decode),
                        "preempted": sorted(carried_preempted + preempted, key=int),
                        "admitted": {k: admitted[k] for k in sorted(admitted, key=int)},
                    }
                )
            else:
                self.steps.append(None)
            carried_preempted = []
            self.clock += 1
            if len(self.steps) > max_steps:
                raise RuntimeError(f"more than {max_steps} steps: a case that never ends?")

    def result(self) -> dict:
        import vllm

        return {
            "side": "vllm",
            "vllm_version": vllm.__version__,
            "steps": self.steps,
            "requests": {str(k): v for k, v in sorted(self.requests.items())},
        }


def run_case(case: dict) -> dict:
    runner = Runner(case["config"], case["requests"])
    runner.run()
    return runner.result()


def check() -> None:
    """The imports and a two-request case work; prints vLLM's and torch's versions."""
    import torch
    import vllm

    case = {
        "config": {
            "block_size": 16,
            "num_blocks": 8,
            "max_num_seqs": 4,
            "max_num_batched_tokens": 32,
            "max_model_len": 256,
            "enable_chunked_prefill": True,
            "enable_prefix_caching": True,
            "long_prefill_token_threshold": 0,
        },
        "requests": [
            {"index": 0, "arrival_step": 0, "num_prompt_tokens": 40, "num_output_tokens": 3},
            {"index": 1, "arrival_step": 0, "num_prompt_tokens": 20, "num_output_tokens": 2},
        ],
    }
    result = run_case(case)
    done = [r["finish_step"] for r in result["requests"].values()]
    assert None not in done, f"a request did not finish: {result['requests']}"
    print(f"vllm {vllm.__version__} scheduler OK on torch {torch.__version__}: {len(result['steps'])} steps")


BENCH_BATCHES = (1, 8, 32, 64, 128, 256, 512, 1024)
BENCH_QUEUES = (0, 64, 256, 1024)
BENCH_STEPS = 50  # timed steps per repeat
BENCH_OUTPUT_TOKENS = 4000  # no request finishes while timed


def bench_case(batch: int, queue: int, blocked_by: str) -> tuple[dict, list[dict]]:
    """``batch`` requests of 16-token prompts that decode, and ``queue`` more that wait: blocked by
    ``max_num_seqs`` (= batch; 16-token prompts, blocks to spare), or by KV blocks (max_num_seqs above batch +
    queue; the queue's head has a prompt longer than the blocks the batch leaves free, so that every step tries
    it and stops there, FCFS; the others have 16-token prompts)."""
    per_request = -(-(16 + 6 + BENCH_STEPS + 2) // 16)  # blocks a batch request fills while timed
    queue_prompt, head_prompt = 16, 16
    if blocked_by == "max_num_seqs":
        max_num_seqs, num_blocks = batch, (batch + queue) * per_request + 16
    else:
        max_num_seqs, num_blocks = batch + queue + 1, batch * per_request + 4
        head_prompt = 16 * (num_blocks - 2 * batch + 1)  # a batch request holds 2 blocks when admitted
    config = {
        "block_size": 16,
        "num_blocks": num_blocks,
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": 8192,
        "max_model_len": 131072,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": True,
        "long_prefill_token_threshold": 0,
    }
    requests = [
        {
            "index": i,
            "arrival_step": 0,
            "num_prompt_tokens": 16 if i < batch else head_prompt if i == batch else queue_prompt,
            "num_output_tokens": BENCH_OUTPUT_TOKENS,
        }
        for i in range(batch + queue)
    ]
    return config, requests


def bench(out_path: str, repeats: int = 5) -> None:
    """CPU time (``time.process_time``) of ``schedule()`` and of ``update_from_output()`` per decode step, by
    batch size, queue length and what blocks the queue (``bench_case``): for each, ``repeats`` fresh schedulers,
    each warmed up until the whole batch decodes and then timed over ``BENCH_STEPS`` steps; the median step of
    each repeat, and the median over repeats. Writes a CSV."""
    import csv
    import statistics

    load_before, t_start = os.getloadavg(), time.time()
    rows = []
    for blocked_by in ("max_num_seqs", "kv_blocks"):
        for batch in BENCH_BATCHES:
            for queue in BENCH_QUEUES:
                if blocked_by == "kv_blocks" and queue == 0:
                    continue  # the same as max_num_seqs with no queue
                samples_sched, samples_update = [], []
                for _ in range(repeats):
                    config, requests = bench_case(batch, queue, blocked_by)
                    runner = Runner(config, requests, record=False)
                    sched = runner.scheduler
                    # the batch first (1,024 prompts take two steps of 8,192 tokens), then the queue
                    for spec in runner.pending[:batch]:
                        sched.add_request(make_request(spec, runner.hasher))
                    _step_n(runner, 4)
                    for spec in runner.pending[batch:]:
                        sched.add_request(make_request(spec, runner.hasher))
                    runner.pending = []
                    _step_n(runner, 2)
                    runner.timings.clear()
                    _step_n(runner, BENCH_STEPS)
                    timed = runner.timings
                    assert all(t[0] == batch and t[1] == batch and t[2] == queue for t in timed), (
                        f"batch {batch} queue {queue} {blocked_by}: the timed steps were not pure decode of the "
                        f"batch with the queue waiting: {timed[:3]}"
                    )
                    samples_sched.append(statistics.median(t[3] for t in timed))
                    samples_update.append(statistics.median(t[4] for t in timed))
                s, u = statistics.median(samples_sched), statistics.median(samples_update)
                rows.append((blocked_by, batch, queue, s * 1e6, u * 1e6, (s + u) * 1e6))
                print(
                    f"{blocked_by:12s} batch {batch:5d} queue {queue:5d}: schedule {s * 1e6:8.1f} us, "
                    f"update_from_output {u * 1e6:8.1f} us",
                    file=sys.stderr,
                )
    with open(out_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "queue_blocked_by",
                "batch_size",
                "queue_length",
                "schedule_us",
                "update_from_output_us",
                "total_us",
            ]
        )
        for row in rows:
            w.writerow([*row[:3], f"{row[3]:.1f}", f"{row[4]:.1f}", f"{row[5]:.1f}"])
    _write_bench_notes(out_path, rows, repeats, load_before, os.getloadavg(), time.time() - t_start)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def _write_bench_notes(out_path, rows, repeats, load_before, load_after, wall_s) -> None:
    """The benchmark's .md beside its CSV: how it was measured, on what, under what load."""
    import datetime
    import platform

    import torch
    import vllm

    def total(blocked_by, batch, queue):
        for row in rows:
            if row[:3] == (blocked_by, batch, queue):
                return f"{row[5]:,.0f}"
        return "-"

    lines = [
        "# CPU time of vLLM's scheduler per step (`schedule()` + `update_from_output()`)",
        "",
        f"Produced by `.venv-vllm/bin/python scripts/conformance/vllm_driver.py --bench {out_path}` "
        "(the venv from `scripts/conformance/build_vllm_venv.sh`), on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall {wall_s:.0f} s.",
        "",
        f"- vLLM {vllm.__version__} (the PyPI wheel, `vllm.v1.core.sched.scheduler.Scheduler`, synchronous, prefix "
        f"caching on, chunked prefill on, block size 16, max_num_batched_tokens 8192), torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- CPU: {_cpu_name()}, {os.cpu_count()} logical CPUs; load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.2f}' for x in load_before)} before and {', '.join(f'{x:.2f}' for x in load_after)} "
        "after: a shared machine (CPU time, not wall time, is measured, but contention for caches and cores still "
        "inflates it: read these as upper bounds for an idle core of this CPU)",
        "",
        "Method: `time.process_time()` (CPU time of this process) around each call, with the driver's fake model "
        "output (one sampled token per decoding request) built outside the timed calls. Each row: `batch_size` "
        "requests decoding (16-token prompts, no request finishes while timed) and `queue_length` waiting; the "
        "queue is blocked either by `max_num_seqs` (= batch size: v1's waiting loop stops at once) or by KV "
        "blocks (its head needs more blocks than are free: every step tries to allocate it, FCFS stops there). "
        f"For each row, {repeats} fresh schedulers, each warmed up until the batch decodes and then timed over "
        f"{BENCH_STEPS} steps; the median step of each repeat, then the median over repeats (microseconds).",
        "",
        "Total per step (us), queue blocked by max_num_seqs:",
        "",
        "| batch | " + " | ".join(f"queue {q}" for q in BENCH_QUEUES) + " |",
        "|---|" + "---|" * len(BENCH_QUEUES),
    ]
    for batch in BENCH_BATCHES:
        lines.append(
            f"| {batch} | " + " | ".join(total("max_num_seqs", batch, q) for q in BENCH_QUEUES) + " |"
        )
    queues = [q for q in BENCH_QUEUES if q]
    lines += ["", "Total per step (us), queue blocked by KV blocks:", ""]
    lines += ["| batch | " + " | ".join(f"queue {q}" for q in queues) + " |", "|---|" + "---|" * len(queues)]
    for batch in BENCH_BATCHES:
        lines.append(f"| {batch} | " + " | ".join(total("kv_blocks", batch, q) for q in queues) + " |")
    lines += [
        "",
        "Not measured here: prefill-heavy steps, finishes, preemptions, async scheduling (vLLM overlaps the "
        "scheduler with the GPU there), the engine core's other per-step work (input preparation, output "
        "processing and detokenization in the frontend).",
    ]
    notes = os.path.splitext(out_path)[0] + ".md"
    with open(notes, "w") as f:
        f.write("\n".join(lines) + "\n")


def _step_n(runner: Runner, num_steps: int) -> None:
    """``num_steps`` steps of ``runner``'s scheduler with no arrivals (the benchmark's loop)."""
    from vllm.v1.outputs import ModelRunnerOutput

    sched = runner.scheduler
    for _ in range(num_steps):
        num_queued = len(sched.waiting)
        t0 = time.process_time()
        out = sched.schedule()
        t1 = time.process_time()
        ids = list(out.num_scheduled_tokens)
        sampled = []
        for rid in ids:
            req = sched.requests[rid]
            sampled.append([OWN_TOKEN_BASE + int(rid)] if req.num_computed_tokens >= req.num_tokens else [])
        runner_output = ModelRunnerOutput(req_ids=ids, sampled_token_ids=sampled)
        t2 = time.process_time()
        sched.update_from_output(out, runner_output)
        t3 = time.process_time()
        runner.timings.append((len(ids), out.total_num_scheduled_tokens, num_queued, t1 - t0, t3 - t2))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        check()
        return 0
    if argv[:1] == ["--bench"] and len(argv) == 2:
        bench(argv[1])
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        cases = json.load(f)["cases"]
    results = []
    for case in cases:
        t0 = time.process_time()
        result = run_case(case)
        result["cpu_s"] = time.process_time() - t0
        results.append(result)
    with open(argv[1] + ".tmp", "w") as f:
        json.dump({"results": results}, f)
    os.replace(argv[1] + ".tmp", argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
