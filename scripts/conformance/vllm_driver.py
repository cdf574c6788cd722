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
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
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
        kv_cache_groups=[
            KVCacheGroupSpec(
                ["layer"],
                FullAttentionSpec(block_size=block_size, num_kv_heads=1, head_size=1, dtype=torch.float32),
            )
        ],
    )
    cache_config.num_gpu_blocks = num_blocks
    return Scheduler(
        vllm_config=vllm_config,
        kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(vllm_config),
        block_size=block_size,
        log_stats=False,
    )


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


def bench(out_path: str, repeats: int = 5) -> None:
    """CPU time (``time.process_time``) of ``schedule()`` and ``update_from_output()`` per step, by batch size
    and queue length: for each (batch, queue), ``batch`` requests decode (their prompts done) while ``queue``
    more wait that cannot be admitted (max_num_seqs = batch); median over ``repeats`` runs of 50 steps each."""
    import csv
    import statistics

    rows = []
    for batch in (1, 8, 32, 64, 128, 256, 512, 1024):
        for queue in (0, 64, 1024):
            samples_sched, samples_update = [], []
            for _ in range(repeats):
                num_steps = 50
                config = {
                    "block_size": 16,
                    "num_blocks": (batch + queue) * 4 + 16,
                    "max_num_seqs": batch,
                    "max_num_batched_tokens": max(8192, batch),
                    "max_model_len": 4096,
                    "enable_chunked_prefill": True,
                    "enable_prefix_caching": True,
                    "long_prefill_token_threshold": 0,
                }
                requests = [
                    {"index": i, "arrival_step": 0, "num_prompt_tokens": 16, "num_output_tokens": 10_000 // 4}
                    for i in range(batch + queue)
                ]
                runner = Runner(config, requests, record=False)
                # warm up until every batch slot decodes, then time num_steps steps
                sched = runner.scheduler
                for spec in runner.pending:
                    sched.add_request(make_request(spec, runner.hasher))
                    runner.requests[spec["index"]] = {
                        "first_token_step": None,
                        "finish_step": None,
                        "num_preemptions": 0,
                        "num_cached_tokens": None,
                    }
                runner.pending = []
                _step_n(runner, 3)
                runner.timings.clear()
                _step_n(runner, num_steps)
                assert all(t[0] == batch for t in runner.timings), "the batch changed while timed"
                samples_sched.append(statistics.median(t[3] for t in runner.timings))
                samples_update.append(statistics.median(t[4] for t in runner.timings))
            s, u = statistics.median(samples_sched), statistics.median(samples_update)
            rows.append((batch, queue, s * 1e6, u * 1e6, (s + u) * 1e6))
            print(
                f"batch {batch:5d} queue {queue:5d}: schedule {s * 1e6:9.1f} us, update {u * 1e6:9.1f} us",
                file=sys.stderr,
            )
    with open(out_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_size", "queue_length", "schedule_us", "update_from_output_us", "total_us"])
        for row in rows:
            w.writerow([row[0], row[1], f"{row[2]:.1f}", f"{row[3]:.1f}", f"{row[4]:.1f}"])


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
