"""The Python API: ``simulate(config, trace) -> RunResult`` (the CLI, sweeps and plans are built on it).

from kvsim.simulator import SimConfig, simulate
from kvsim.traces import load_trace

result = simulate(SimConfig(model="llama-2-7b", gpu="a100-80gb", allocator="paged"), load_trace("azure-conv"))
result.summary["latency"]["ttft_s"]["p99"]
result.write("runs/paged")          # config.json, summary.json, requests.csv, timeline.csv (docs/outputs.md)
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy

from kvsim.errors import KvsimError
from kvsim.simulator.allocators.base import KVAllocator, largest_fitting
from kvsim.simulator.config import KV_CACHE_DTYPES, SimConfig
from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.engine import ArrivalSource, Replica
from kvsim.simulator.engine_overhead import HostTime, gpu_time_only, host_time_for, resolve_engine_overhead
from kvsim.simulator.kv_groups import kv_cache_layout
from kvsim.simulator.metrics import summarize
from kvsim.simulator.recorder import Recorder, parts_of
from kvsim.simulator.schedulers import SCHEDULERS
from kvsim.simulator.schedulers.tgi_config import TGI_OPTION_DEFAULTS, resolve_tgi_config
from kvsim.simulator.schedulers.vllm_v0 import rejection_reason as vllm_rejection_reason
from kvsim.simulator.specs import GpuSpec, ModelSpec, kv_capacity_bytes
from kvsim.simulator.uncertainty.terms import check_term_values, parse_term_values, run_terms, vmm_map_case_s
from kvsim.traces.request import Trace
from kvsim.traces.transforms import mean_rate_per_s


@dataclass
class RunResult:
    """What one simulation produced. ``summary`` is the ``summary.json`` mapping; ``write`` makes the run
    folder. ``recorder`` holds the raw columns and timelines for callers that want more."""

    config: SimConfig
    trace: Trace
    summary: dict
    recorder: Recorder
    resolved: dict = field(default_factory=dict)  # config.json: config + resolved values + trace + cost model

    @property
    def label(self) -> str:
        return self.summary["label"]

    def write(self, out_dir: str | Path) -> Path:
        from kvsim.simulator.outputs import write_run_folder

        return write_run_folder(self, Path(out_dir))


# The run allocates short-lived tuples and objects at every step and keeps each request's objects for its
# lifetime. At CPython's default (a young collection every 700 net allocations) the collector examined every
# live request again and again, and freed almost nothing (the run makes few cycles): 2.5 s of a
# 1,000,000-request run (2,967 collections). Every 50,000 takes 4 collections, 0.06 s (docs/performance.md).
# Cyclic garbage waits at most that long.
GC_YOUNG_THRESHOLD = 50_000


@contextmanager
def young_collections_every(num_allocations: int) -> Iterator[None]:
    """Collect the youngest generation every ``num_allocations`` net allocations inside the block, and restore
    the process's setting after it (a setting that collects less often, or never, is kept)."""
    before = gc.get_threshold()
    if 0 < before[0] < num_allocations:
        gc.set_threshold(num_allocations, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def simulate(
    config: SimConfig,
    trace: Trace,
    *,
    progress: bool = False,
    cost_model: CostModel | None = None,
    allocator_factory: Callable[[], KVAllocator] | None = None,
    keep_timeline: bool = True,
) -> RunResult:
    """Run ``trace`` through ``config``'s deployment and return its metrics.

    ``cost_model`` replaces the one ``config`` names (tests use ``ConstantCostModel``); ``allocator_factory``
    (called once per replica) replaces the allocator built from ``config.allocator``. ``keep_timeline=False``
    keeps the time-weighted means but drops the per-change rows (very long traces, sweeps): the run folder then
    has no ``timeline.csv``.
    Raises ``KvsimError`` for unknown names, a model that does not fit, and similar bad input.
    """
    engine_on = resolve_engine_overhead(
        config.engine_overhead, config.scheduler, own_cost_model=cost_model is not None
    )
    config = dataclasses.replace(config, engine_overhead=engine_on)  # config.json records what ran
    model = ModelSpec.from_name(config.model)
    gpu = GpuSpec.from_name(config.gpu)
    if config.max_model_len is not None:
        model = dataclasses.replace(model, max_model_len=config.max_model_len)
    if KV_CACHE_DTYPES[config.kv_cache_dtype] is not None:
        model = dataclasses.replace(model, kv_cache_dtype_bytes=KV_CACHE_DTYPES[config.kv_cache_dtype])
    if config.kv_capacity_bytes is not None:
        capacity = config.kv_capacity_bytes
    else:
        capacity = kv_capacity_bytes(
            model, gpu, config.tp, config.gpu_memory_utilization, config.activation_reserve_bytes
        )
    if cost_model is None:
        from kvsim.simulator.cost import make_cost_model

        cost_model = make_cost_model(
            model,
            gpu,
            config.tp,
            profile=config.profile,
            paged_decode_factor=config.paged_decode_factor,
            term_values=parse_term_values(config.term_values),
        )
        if config.engine_overhead:  # the engine model replaces the profile's placeholder host term
            cost_model = gpu_time_only(cost_model)
    host = host_time_for(config)  # the engine's host time (engine_overhead.py), None without engine_overhead
    if allocator_factory is None:
        single_sequence = all(
            column is None or not len(column) or int(column.max()) <= 1
            for column in (trace.n, trace.beam_width)
        )
        # no request names prefix hashes: every block is its request's own (block_pool.request_block_hashes)
        own_blocks_only = trace.prefix_block_hashes is None or not any(trace.prefix_block_hashes)
        allocator_factory = _allocator_factory(
            config, model, capacity, cost_model, single_sequence, own_blocks_only=own_blocks_only
        )
    uncertain_terms = run_terms(config, cost_model)  # the run's uncertain terms (issue 23), config.json's
    check_term_values(config, uncertain_terms)
    max_num_batched_tokens = config.resolved_max_num_batched_tokens(
        model.max_model_len, gpu.name, gpu.memory_bytes
    )
    max_num_seqs = config.resolved_max_num_seqs(gpu.name, gpu.memory_bytes)

    env = simpy.Environment()
    recorder = Recorder(len(trace), config.num_replicas, keep_timeline=keep_timeline)
    replicas = []
    for index in range(config.num_replicas):
        scheduler = _make_scheduler(
            config, allocator_factory(), max_num_batched_tokens, max_num_seqs, model.max_model_len
        )
        # a windowed model's allocator (vLLM v1's hybrid manager, paged_hybrid.py) steps one step at a time
        fast_forward = config.fast_forward and getattr(scheduler.allocator, "fast_forward", True)
        replicas.append(
            Replica(env, index, scheduler, cost_model, recorder, fast_forward=fast_forward, host=host)
        )
    allocator = replicas[0].scheduler.allocator
    # Called once per arrival: the choices that depend only on the config are made here.
    allocator_reason = allocator.rejection_reason
    # vllm-v0's prompt checks (v1 needs none: its budget takes every prompt, and it admits a prompt alone
    # whatever the watermark)
    is_vllm, is_tgi = config.scheduler == "vllm-v0", config.scheduler == "tgi"
    scheduler_reason = replicas[0].scheduler.rejection_reason if is_tgi else None
    watermark_reason = replicas[0].scheduler.watermark_rejection if is_vllm else None
    chunked = config.resolved_enable_chunked_prefill

    # vLLM's two prompt checks each reject exactly the prompts longer than some length: found once here, so
    # that a prompt no longer than both (nearly every one) skips them.
    vllm_ok_prompt = (
        largest_fitting(
            model.max_model_len,
            lambda p: (
                vllm_rejection_reason(p, max_num_batched_tokens, chunked) is None
                and watermark_reason(p) is None
            ),
        )
        if is_vllm
        else 0
    )

    def rejection_reason(num_prompt_tokens: int, num_output_tokens: int, num_seqs: int) -> str | None:
        # A request whose first token is its last finishes at its prefill, before its sequences fork.
        reason = allocator_reason(
            num_prompt_tokens, num_output_tokens, num_seqs if num_output_tokens > 1 else 1
        )
        if reason is None and is_vllm and num_prompt_tokens > vllm_ok_prompt:
            reason = vllm_rejection_reason(num_prompt_tokens, max_num_batched_tokens, chunked)
            reason = reason or watermark_reason(num_prompt_tokens)
        if reason is None and is_tgi:
            reason = scheduler_reason(num_prompt_tokens, num_output_tokens, num_seqs)
        elif reason is None and num_seqs > max_num_seqs:
            reason = f"{num_seqs} parallel sequences exceed max_num_seqs {max_num_seqs}"
        return reason

    bar = _progress_bar(len(trace)) if progress else None
    if bar is not None:  # updated as requests finish, about every 1% of them (not per step)
        recorder.report_progress(bar.update_to, every=len(trace) // 100)
    source = ArrivalSource(
        env,
        trace,
        replicas,
        recorder,
        router=config.router,
        rejection_reason=rejection_reason,
        request_s=host.overhead.request_s.value if host is not None else 0.0,
    )
    # A prefix-caching allocator's counters beside every timeline row, and summed in summary.json.
    prefix_cache_counts = [getattr(r.scheduler.allocator, "prefix_cache_counts", None) for r in replicas]
    caches_prefixes = all(counts is not None and counts() is not None for counts in prefix_cache_counts)
    first_arrival_s = float(trace.arrival_s[0])
    for replica, counts in zip(replicas, prefix_cache_counts):
        if caches_prefixes:
            replica.timeline.watch_prefix_cache(counts)
        replica.source = source
        replica.clock_s = first_arrival_s
        # The initial row: empty memory, nothing running, waiting, swapped or batched.
        replica.timeline.add_row(
            first_arrival_s, parts_of(replica.scheduler.allocator.breakdown()), False, 0, 0, 0, 0, 0
        )
    with young_collections_every(GC_YOUNG_THRESHOLD):
        env.run()
    if bar is not None:
        bar.update_to(len(trace))
        bar.close()
    unfinished = [
        r.index for r in replicas if r.scheduler.waiting or r.scheduler.running or r.scheduler.swapped
    ]
    assert not unfinished, f"replicas {unfinished} stopped with requests left (scheduler bug)"

    recorder.collect()
    finished = recorder.finish_s[~np.isnan(recorder.finish_s)]
    recorder.close(float(finished.max()) if len(finished) else first_arrival_s)
    prefix_cache_totals = None  # summed over replicas
    if caches_prefixes:
        prefix_cache_totals = [sum(c) for c in zip(*(counts() for counts in prefix_cache_counts))]
    summary = summarize(
        trace,
        recorder,
        allocator_stats=allocator_stats([r.scheduler.allocator for r in replicas]),
        prefix_cache_counts=prefix_cache_totals,
        label=allocator.name,
        allocator=allocator.name,
        scheduler=config.scheduler,
        cost_source=cost_model.source,
        cost_description=_describe_costs(cost_model, host),
        capacity_bytes=capacity,
        slo_ttft_s=config.slo_ttft_s,
        slo_tpot_s=config.slo_tpot_s,
        evicts=hasattr(allocator, "evicted_tokens"),
    )
    # what was offered (measured on the trace that ran, after any cut and rescale) and the rows of the run
    # folder's CSVs, which a reader checks (an interrupted or truncated file is refused, not drawn)
    summary["workload"] = workload_record(trace)
    summary["num_timeline_rows"] = sum(timeline.num_rows for timeline in recorder.timelines)
    tgi = getattr(replicas[0].scheduler, "config", None) if config.scheduler == "tgi" else None
    # vLLM's "GPU KV cache size: N tokens" for this capacity (kv_groups.py; two batches in flight under v1)
    in_flight_tokens = max_num_batched_tokens * (2 if config.scheduler == "vllm" else 1)
    layout = kv_cache_layout(model, config.tp, allocator.block_size or 16)
    kv_cache_size_tokens = layout.kv_cache_size_tokens(capacity, model.max_model_len, in_flight_tokens)
    resolved = {
        **config.as_dict(),
        **(dataclasses.asdict(tgi) if tgi is not None else {}),
        "allocator": allocator.name,
        # every option of the allocator, defaults included: the spec string names only those that differ from
        # the defaults of the version that wrote it (vattention's mapping became overlapped by default)
        "allocator_config": allocator_config(allocator),
        "max_num_batched_tokens": max_num_batched_tokens,
        "max_num_seqs": max_num_seqs,
        "enable_chunked_prefill": config.resolved_enable_chunked_prefill,
        "watermark": config.resolved_watermark,
        "enable_prefix_caching": bool(
            getattr(getattr(allocator, "config", None), "enable_prefix_caching", False)
        ),
        "max_model_len": model.max_model_len,
        "kv_capacity_bytes": capacity,
        "kv_cache_size_tokens": kv_cache_size_tokens,
        "model_spec": dataclasses.asdict(model),
        "gpu_spec": dataclasses.asdict(gpu),
        "cost_model": {
            "source": cost_model.source,
            "description": _describe_costs(cost_model, host),
            "profile": config.profile,
            "uncertain_terms": [term.as_dict() for term in uncertain_terms],
            "term_values": parse_term_values(config.term_values),
        },
        "engine_overhead": engine_record(host),
        "trace": {"source": trace.provenance.source, "num_requests": len(trace), **trace.meta},
        "workload": summary["workload"],
        "timeline": keep_timeline,  # whether the run folder has timeline.csv (`--no-timeline`: not)
    }
    return RunResult(config=config, trace=trace, summary=summary, recorder=recorder, resolved=resolved)


def _describe_costs(cost_model: CostModel, host: HostTime | None) -> str:
    """The cost model's description, and the engine's host time with its sources when it is modelled."""
    if host is None:
        return cost_model.description
    return f"{cost_model.description}; {host.describe()}"


def engine_record(host: HostTime | None) -> dict | None:
    """config.json's ``engine_overhead``: every parameter with its value, source, range and reason."""
    if host is None:
        return None
    return {
        "engine": host.overhead.engine,
        "version": host.overhead.version,
        "overlap": host.overlap,
        "num_scheduler_steps": host.num_scheduler_steps,
        "params": {name: dataclasses.asdict(p) for name, p in host.overhead.params().items()},
    }


def workload_record(trace: Trace) -> dict:
    """The workload as it ran: ``offered_rate_per_s`` (mean arrival rate, (N - 1) / span; None for a trace
    that spans no time), ``num_requests``, ``span_s`` (first to last arrival) and ``first_arrival_s``."""
    return {
        "offered_rate_per_s": mean_rate_per_s(trace),
        "num_requests": len(trace),
        "span_s": float(trace.duration_s),
        "first_arrival_s": float(trace.arrival_s[0]) if len(trace) else None,
    }


def allocator_config(allocator: KVAllocator) -> dict:
    """The allocator's options as a mapping (its config dataclass's fields), or {} for one without."""
    config = getattr(allocator, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def allocator_stats(allocators: list[KVAllocator]) -> dict[str, int | float]:
    """The allocators' optional ``stats()`` counters (an extension of the KVAllocator Protocol: a mapping of
    named totals, e.g. contiguous-growth's copies), summed over replicas; {} for allocators without it."""
    totals: dict[str, int | float] = {}
    for alloc in allocators:
        stats = getattr(alloc, "stats", None)
        for key, value in (stats() if stats is not None else {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def _make_scheduler(
    config: SimConfig,
    allocator: KVAllocator,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    max_model_len: int,
):
    cls = SCHEDULERS[config.scheduler]
    if config.scheduler == "tgi":
        if config.enable_chunked_prefill:
            raise KvsimError("enable_chunked_prefill is a vllm option; TGI 2.x prefills whole prompts")
        tgi = resolve_tgi_config(config, max_model_len=max_model_len, allocator=allocator)
        return cls(allocator, config=tgi)
    changed = [k for k, v in TGI_OPTION_DEFAULTS.items() if getattr(config, k) != v]
    if changed:
        raise KvsimError(
            f"{', '.join(changed)} {'is a tgi option' if len(changed) == 1 else 'are tgi options'}, "
            f"not {config.scheduler!r}'s; drop it or use --scheduler tgi"
        )
    kwargs = {"max_num_seqs": max_num_seqs, "max_num_batched_tokens": max_num_batched_tokens}
    if config.scheduler == "vllm":  # v1, 0.34.0: recompute only (SimConfig refuses swap)
        return cls(
            allocator,
            **kwargs,
            enable_chunked_prefill=config.resolved_enable_chunked_prefill,
            long_prefill_token_threshold=config.long_prefill_token_threshold,
            scheduler_reserve_full_isl=config.scheduler_reserve_full_isl,
            watermark=config.resolved_watermark,
        )
    kwargs["preemption_mode"] = config.preemption_mode
    if config.scheduler == "vllm-v0":
        kwargs["enable_chunked_prefill"] = config.resolved_enable_chunked_prefill
        kwargs["watermark"] = config.resolved_watermark
        kwargs["num_scheduler_steps"] = config.num_scheduler_steps
    elif config.enable_chunked_prefill:
        raise KvsimError(
            f"enable_chunked_prefill is a vllm scheduler option, not {config.scheduler!r}; "
            f"drop it or use --scheduler vllm"
        )
    elif config.watermark is not None:
        raise KvsimError(
            f"watermark is a vllm scheduler option, not {config.scheduler!r}; drop it or use --scheduler vllm"
        )
    return cls(allocator, **kwargs)


def _allocator_factory(
    config: SimConfig,
    model: ModelSpec,
    capacity: int,
    cost_model: CostModel,
    single_sequence: bool,
    *,
    own_blocks_only: bool = False,
) -> Callable[[], KVAllocator]:
    """Builds one replica's allocator. ``paged`` without prefix caching, on a trace where every request has
    one sequence, shares no block: it is counted rather than tracked by block id (the same results, faster;
    ``allocators/paged_counted.py``). So is ``vllm``'s (v1) prefix cache when no request names prefix hashes
    (``own_blocks_only``: a request can only hit its own blocks; ``allocators/paged_counted_cache.py``)."""
    from kvsim.simulator.allocators import PagedAllocator, make_allocator
    from kvsim.simulator.allocators.paged_counted import CountedPagedAllocator

    hbm_bw_bytes_per_s = GpuSpec.from_name(config.gpu).hbm_bw_bytes_per_s  # contiguous-growth's copies

    def build(map_latency_s: float | None = None) -> KVAllocator:
        return make_allocator(
            config.allocator,
            model=model,
            tp=config.tp,
            capacity_bytes=capacity,
            swap_space_bytes=config.swap_space_bytes,
            map_latency_s=map_latency_s,
            hbm_bw_bytes_per_s=hbm_bw_bytes_per_s,
        )

    probe = build()
    resolve = getattr(probe, "resolve_for_scheduler", None)  # paged: prefix caching by the scheduler's vLLM
    if resolve is not None:
        resolve(config.scheduler)
    if type(probe) is PagedAllocator and single_sequence and not probe.config.enable_prefix_caching:
        counted = lambda: CountedPagedAllocator(  # noqa: E731
            probe.config,
            model=model,
            tp=config.tp,
            capacity_bytes=capacity,
            swap_space_bytes=config.swap_space_bytes,
        )
        return lambda: _named(counted(), probe.name)  # the label: the spec as written
    if type(probe) is PagedAllocator and single_sequence and own_blocks_only and config.scheduler == "vllm":
        # v1's prefix cache over blocks no two requests share: counted too (allocators/paged_counted_cache.py)
        from kvsim.simulator.allocators.paged_counted_cache import CountedOwnBlocksCache

        return lambda: _named(
            CountedOwnBlocksCache(
                probe.config,
                model=model,
                tp=config.tp,
                capacity_bytes=capacity,
                swap_space_bytes=config.swap_space_bytes,
            ),
            probe.name,
        )
    map_latency_s = None
    page_size_bytes = getattr(getattr(probe, "config", None), "page_size", None)  # vAttention's page, bytes
    measured = getattr(cost_model, "map_latency_s", None)
    if page_size_bytes is not None and callable(measured):
        map_latency_s = measured(page_size_bytes)  # a measured vAttention map cost, when the profile has one
    if page_size_bytes is not None:  # an uncertainty case's map time
        map_latency_s = vmm_map_case_s(config, map_latency_s)
    if resolve is None:
        return lambda: build(map_latency_s)

    def build_resolved() -> KVAllocator:
        alloc = build(map_latency_s)
        alloc.resolve_for_scheduler(config.scheduler)
        return alloc

    return build_resolved


def _named(alloc: KVAllocator, name: str) -> KVAllocator:
    alloc.name = name
    return alloc


# A progress bar shows once a run has lasted this long (wall time), so that short runs print nothing.
PROGRESS_DELAY_S = 1.0


class _ProgressBar:
    """Requests done (finished or rejected) out of the trace's, on stderr (tqdm)."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="req", desc="simulating", mininterval=0.5, delay=PROGRESS_DELAY_S)

    def update_to(self, num_done: int) -> None:
        self._bar.update(num_done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: int) -> _ProgressBar:
    return _ProgressBar(total)
