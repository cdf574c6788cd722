"""``SimConfig``: everything a simulation needs besides the trace (STYLE 3).

Field names are vLLM's where vLLM has the concept, and the CLI options and TOML keys map one to one onto them
(``--max-num-seqs`` <-> ``max_num_seqs``). A scheduler option left unset (None) takes the default of the vLLM
version the scheduler follows:

- ``vllm`` (v1, 0.34.0): ``enable_chunked_prefill`` on and ``watermark`` 0 (``vllm/config/scheduler.py``
  ``SchedulerConfig``), prefix caching on (``vllm/config/cache.py``); ``max_num_seqs`` and
  ``max_num_batched_tokens`` by GPU memory for the OpenAI server (``vllm/engine/arg_utils.py``
  ``EngineArgs.get_batch_defaults``, ``UsageContext.OPENAI_API_SERVER``): 1024 and 16384 from 160 GiB; 1024
  and 8192 from 70 GiB except A100s; 256 and 2048 otherwise; without chunked prefill
  ``max_num_batched_tokens = max(max_model_len, that)`` (``_set_default_max_num_seqs_and_batched_tokens_args``).
- ``vllm-v0`` (v0.6.3, ``vllm/config.py``, ``vllm/engine/arg_utils.py``): ``max_num_seqs=256``,
  ``max_num_batched_tokens = max(max_model_len, 2048)`` without chunked prefill, 512 with it (off by default),
  and the block manager's ``watermark=0.01`` (``vllm/core/block_manager.py``: a request is admitted or swapped
  in only if 1% of the KV blocks stay free after it).
- the others: ``max_num_seqs=256`` and v0.6.3's token budget.

Both: ``block_size=16``, ``gpu_memory_utilization=0.9``, ``swap_space=4`` GiB, ``preemption_mode`` recompute.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from kvsim.errors import KvsimError

ROUTER_NAMES = ("round_robin", "least_outstanding")
SCHEDULER_NAMES = ("vllm", "vllm-v0", "orca", "static", "tgi")
PREEMPTION_MODES = ("recompute", "swap")
# vLLM's --kv-cache-dtype names kvsim models -> bytes a cached value takes (None: the model's dtype)
KV_CACHE_DTYPES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
# Which vLLM each vLLM scheduler follows (README, --help).
SCHEDULER_VERSIONS = {"vllm": "vLLM v1 as in 0.34.0", "vllm-v0": "vLLM v0.6.3"}

# vLLM v0.6.3 EngineArgs: max_num_batched_tokens when chunked prefill is on.
CHUNKED_PREFILL_MAX_NUM_BATCHED_TOKENS = 512
# vLLM v0.6.3 SchedulerConfig: the floor of max_num_batched_tokens without chunked prefill.
MIN_MAX_NUM_BATCHED_TOKENS = 2048
GIB = 2**30
# vLLM 0.34.0 EngineArgs.get_batch_defaults, UsageContext.OPENAI_API_SERVER: (max_num_batched_tokens, max_num_seqs)
# by the GPU's memory; A100s (name checked) stay on the small tier (vLLM PR #17885).
V1_LARGE_GPU_BYTES, V1_LARGE_DEFAULTS = 160 * GIB, (16384, 1024)
V1_MEDIUM_GPU_BYTES, V1_MEDIUM_DEFAULTS = 70 * GIB, (8192, 1024)
V1_SMALL_DEFAULTS = (2048, 256)
V0_MAX_NUM_SEQS = 256  # vLLM v0.6.3 EngineArgs
V0_WATERMARK = 0.01  # vLLM v0.6.3 BlockSpaceManager
# What each field's annotation asks for, as a TOML user reads it.
_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _check_types(config: SimConfig) -> None:
    """Every field holds what its annotation says (a TOML file or an API call may give a quoted number, a
    fraction for a count, ...): a clear error naming the key instead of a TypeError later, or a silent run with
    2.5 sequences. Integers pass for numbers; numpy scalars pass as what they are."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kinds = [kind.strip() for kind in str(f.type).split("|")]
        if value is None and "None" in kinds:
            continue
        kind = kinds[0]
        if kind == "int":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            hint = "; write it without quotes" if isinstance(value, str) and kind != "str" else ""
            unset = " (or leave it unset)" if "None" in kinds else ""
            raise KvsimError(
                f"config key {f.name} must be {_KIND_NAMES[kind]}{unset}, got {value!r} "
                f"({type(value).__name__}){hint}"
            )


def _check_kv_capacity(config: SimConfig) -> None:
    """A ``kv_capacity_bytes`` override must fit on the GPU beside the model's weights: above that it describes
    a GPU that does not exist (and a block pool sized for it: 10**15 bytes ran 32 s at 7.5 GB RSS)."""
    from kvsim.simulator.specs import GpuSpec, ModelSpec, max_kv_capacity_bytes, weight_bytes_per_gpu

    model, gpu = ModelSpec.from_name(config.model), GpuSpec.from_name(config.gpu)
    limit = max_kv_capacity_bytes(model, gpu, config.tp)
    if config.kv_capacity_bytes > limit:
        raise KvsimError(
            f"kv_capacity_bytes {config.kv_capacity_bytes} is more than one {gpu.name} can hold: its "
            f"{gpu.memory_bytes / GIB:.1f} GiB less {weight_bytes_per_gpu(model, config.tp) / GIB:.1f} GiB of "
            f"{model.name} weights (tp={config.tp}) leaves at most {max(limit, 0)} bytes "
            f"({max(limit, 0) / GIB:.1f} GiB) of KV; lower it, or pick a GPU with more memory (--gpu)"
        )


def _check_v0_token_budget(config: SimConfig) -> None:
    """vLLM v0.6.3 refuses to start when, without chunked prefill, max_num_batched_tokens < max_model_len
    (``vllm/config.py`` ``SchedulerConfig._verify_args``: "This effectively limits the maximum sequence length
    to max_num_batched_tokens and makes vLLM reject longer sequences"); kvsim rejected every longer request and
    exited 0. (``vllm``, v1, checks the same in ``resolved_max_num_batched_tokens``.)"""
    if config.resolved_enable_chunked_prefill:
        return
    from kvsim.simulator.specs import ModelSpec

    max_model_len = config.max_model_len or ModelSpec.from_name(config.model).max_model_len
    if config.max_num_batched_tokens < max_model_len:
        raise KvsimError(
            f"max_num_batched_tokens {config.max_num_batched_tokens} is below max_model_len {max_model_len} "
            "with chunked prefill off: vLLM v0.6.3 refuses to start (SchedulerConfig._verify_args: no longer "
            "prompt could ever be scheduled); raise it to at least max_model_len, lower --max-model-len, or "
            "pass --enable-chunked-prefill"
        )


def _check_budget_covers_seqs(config: SimConfig) -> None:
    """vLLM refuses max_num_batched_tokens < max_num_seqs (v0.6.3 ``SchedulerConfig._verify_args``, 0.34.0
    ``verify_max_model_len``): a step could not give every running sequence its token. Checked on the values the
    run resolves (v1's per-GPU defaults included) when either is set."""
    from kvsim.simulator.specs import GpuSpec, ModelSpec

    gpu = GpuSpec.from_name(config.gpu)
    max_model_len = config.max_model_len or ModelSpec.from_name(config.model).max_model_len
    budget = config.resolved_max_num_batched_tokens(max_model_len, gpu.name, gpu.memory_bytes)
    max_num_seqs = config.resolved_max_num_seqs(gpu.name, gpu.memory_bytes)
    if budget < max_num_seqs:
        raise KvsimError(
            f"max_num_batched_tokens {budget} is below max_num_seqs {max_num_seqs}: vLLM refuses to start "
            "(every running sequence needs a token of the step's budget); raise --max-num-batched-tokens or "
            "lower --max-num-seqs"
        )


def _check_engine_options(config: SimConfig) -> None:
    """num_scheduler_steps, engine_overhead and async_scheduling: each only where the engine has it."""
    if config.num_scheduler_steps < 1:
        raise KvsimError(
            f"num_scheduler_steps must be >= 1 (1: no multi-step scheduling), got {config.num_scheduler_steps}"
        )
    if config.num_scheduler_steps > 1:
        if config.scheduler != "vllm-v0":
            raise KvsimError(
                f"num_scheduler_steps {config.num_scheduler_steps}: multi-step scheduling is vLLM v0.6's "
                f"(--scheduler vllm-v0), not {config.scheduler!r}'s; drop it or use --scheduler vllm-v0"
            )
        if config.enable_chunked_prefill:
            raise KvsimError(
                "num_scheduler_steps > 1 with enable_chunked_prefill: kvsim models v0.6.0's multi-step "
                "scheduling, which ran without chunked prefill; drop one of them"
            )
    if config.engine_overhead:
        from kvsim.simulator.engine_overhead import engine_overhead_for

        engine_overhead_for(config.scheduler)  # an error for a scheduler without a term set
    if config.async_scheduling is not None:
        if config.scheduler != "vllm":
            raise KvsimError(
                f"async_scheduling is vLLM v1's (--scheduler vllm), not {config.scheduler!r}'s; drop it"
            )
        if config.engine_overhead is False:
            raise KvsimError(
                "async_scheduling overlaps the engine's host time with the GPU's: it needs engine_overhead "
                "(--engine-overhead); add it or drop async_scheduling"
            )


def _check_uncertainty_fields(config: SimConfig) -> None:
    """``paged_decode_factor`` names a kernel or is a number; ``term_values`` parses (which names a run knows
    is checked when it runs: they depend on its cost model)."""
    from kvsim.simulator.cost.paged_factor import paged_decode_factor
    from kvsim.simulator.uncertainty.terms import parse_term_values

    if config.paged_decode_factor is not None:
        paged_decode_factor(config.gpu, config.paged_decode_factor)
    parse_term_values(config.term_values)


@dataclass(frozen=True)
class SimConfig:
    """One simulated deployment: model, hardware, scheduler, allocator and their options.

    ``allocator`` is a spec string (``paged``, ``paged:block_size=32``, ``reserved:pow2``,
    ``vattention:page_size=64KiB``) parsed by ``kvsim.simulator.allocators.make_allocator``.
    """

    model: str = "llama-2-7b"
    gpu: str = "a100-80gb"
    tp: int = 1
    num_replicas: int = 1
    router: str = "round_robin"
    scheduler: str = "vllm"
    allocator: str = "paged"
    max_num_seqs: int | None = None  # None: the scheduler's vLLM default (vllm: by GPU; others 256)
    max_num_batched_tokens: int | None = None  # None: the scheduler's vLLM default (module docstring)
    max_model_len: int | None = None  # None: the model's max context
    enable_chunked_prefill: bool | None = None  # None: on for vllm (v1), off for vllm-v0
    preemption_mode: str = "recompute"  # swap: vllm-v0 only (v1 preempts by recompute)
    # admit only if this share of KV blocks stays free after; None: vllm 0 (v1), vllm-v0 0.01
    watermark: float | None = None
    # vllm (v1): a prompt chunk's cap while others are queued or running, chunked prefill only; 0: none
    long_prefill_token_threshold: int = 0
    # vllm (v1, 0.34): admit only if the whole (re)prefill's blocks are free, not just its first chunk's
    scheduler_reserve_full_isl: bool = True
    # vllm-v0: multi-step scheduling (v0.6's --num-scheduler-steps): one scheduler pass per N decode steps; 1: off
    num_scheduler_steps: int = 1
    # the engine's host time per step and per request (simulator/engine_overhead.py: vllm-v0, vllm and tgi) in
    # place of the cost model's flat step_overhead placeholder. None (default): on for a scheduler with an engine
    # model when kvsim builds the cost model; off for orca/static (no engine model) and when the caller passes
    # a cost model of its own (``simulate(cost_model=...)``: that model stands for the whole step)
    engine_overhead: bool | None = None
    # vllm (v1), with engine_overhead: host time overlapped with the GPU's step; None: 0.34's default (on)
    async_scheduling: bool | None = None
    gpu_memory_utilization: float = 0.9
    # vLLM's --kv-cache-dtype: auto (the model's dtype) or fp8 (fp8_e4m3, fp8_e5m2): one byte a cached value
    kv_cache_dtype: str = "auto"
    swap_space_gib: float = 4.0  # CPU swap space per GPU (vLLM's ``swap_space``), GiB
    activation_reserve_bytes: int = 0  # per GPU, taken off KV capacity besides the weights
    kv_capacity_bytes: int | None = None  # per GPU; overrides the computed capacity (paper set-ups)
    # path of a cost profile JSON; None: the shipped one for the GPU, else roofline; "roofline": the GPU's
    # datasheet roofline even where a measured profile ships
    profile: str | None = None
    # the paged decode kernel modelled, where the cost model derives one decode kernel from the other (roofline;
    # Vidur's A100): None / "kvsim" kvsim's kernels (measured 1.01 H100, 0.99 H200), "vllm-2023" the vLLM
    # paper's (1.23), or a number (kvsim.simulator.cost.paged_factor)
    paged_decode_factor: str | None = None
    # one uncertainty case: NAME=VALUE,... of uncertain terms (kvsim.simulator.uncertainty.terms); None: nominal
    term_values: str | None = None
    seed: int = 0
    slo_ttft_s: float | None = None  # goodput counts a request only if TTFT <= this (None: no bound)
    slo_tpot_s: float | None = None  # ... and TPOT <= this
    fast_forward: bool = True  # advance runs of pure-decode steps in one event (exact; off only for tests)
    # scheduler tgi: TGI launcher options, TGI's names and defaults (simulator/schedulers/tgi.py)
    max_concurrent_requests: int = 128
    max_batch_prefill_tokens: int | None = None  # None: max_input_tokens + 50
    max_batch_total_tokens: int | None = None  # None: every token slot of the KV cache (TGI's warmup)
    waiting_served_ratio: float = 0.3
    max_waiting_tokens: int = 20
    max_input_tokens: int | None = None  # None: max_total_tokens - 1
    max_total_tokens: int | None = None  # None: max_model_len
    max_batch_size: int | None = None
    max_new_tokens: str = "oracle"  # what clients ask for: oracle | max_total_tokens | an integer

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, int) and not isinstance(
            self.max_new_tokens, bool
        ):  # a TOML integer
            object.__setattr__(self, "max_new_tokens", str(self.max_new_tokens))
        if isinstance(self.paged_decode_factor, numbers.Real) and not isinstance(
            self.paged_decode_factor, bool
        ):
            object.__setattr__(
                self, "paged_decode_factor", repr(float(self.paged_decode_factor))
            )  # a TOML number
        _check_types(self)
        _check_uncertainty_fields(self)
        for name in (
            "gpu_memory_utilization",
            "watermark",
            "swap_space_gib",
            "slo_ttft_s",
            "slo_tpot_s",
            "waiting_served_ratio",
        ):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise KvsimError(f"{name} must be a finite number, got {value}")
        for name in ("tp", "num_replicas"):
            if getattr(self, name) < 1:
                raise KvsimError(f"{name} must be >= 1, got {getattr(self, name)}; pass a positive integer")
        for name in ("max_concurrent_requests", "max_waiting_tokens"):
            if getattr(self, name) < 1:
                raise KvsimError(f"{name} must be >= 1, got {getattr(self, name)}; pass a positive integer")
        text = self.max_new_tokens
        if text not in ("oracle", "max_total_tokens") and not (text.isdigit() and int(text) >= 1):
            raise KvsimError(
                f"max_new_tokens must be oracle, max_total_tokens or a positive integer, got {text!r}"
            )
        if self.waiting_served_ratio < 0:
            raise KvsimError(f"waiting_served_ratio must be >= 0, got {self.waiting_served_ratio}")
        if self.long_prefill_token_threshold < 0:
            raise KvsimError(
                f"long_prefill_token_threshold must be >= 0 (0: no cap), got {self.long_prefill_token_threshold}"
            )
        for name in (
            "max_num_seqs",
            "max_num_batched_tokens",
            "max_model_len",
            "kv_capacity_bytes",
            "max_batch_prefill_tokens",
            "max_batch_total_tokens",
            "max_input_tokens",
            "max_total_tokens",
            "max_batch_size",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KvsimError(f"{name} must be >= 1 (or unset for the default), got {value}")
        if self.router not in ROUTER_NAMES:
            raise KvsimError(f"unknown router {self.router!r}; choose one of {', '.join(ROUTER_NAMES)}")
        if self.scheduler not in SCHEDULER_NAMES:
            raise KvsimError(
                f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULER_NAMES)}"
            )
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise KvsimError(
                f"unknown kv_cache_dtype {self.kv_cache_dtype!r}; choose one of {', '.join(KV_CACHE_DTYPES)} "
                "(vLLM's --kv-cache-dtype names)"
            )
        if self.preemption_mode not in PREEMPTION_MODES:
            raise KvsimError(f"unknown preemption_mode {self.preemption_mode!r}; choose recompute or swap")
        if self.preemption_mode == "swap" and self.swap_space_gib == 0:
            # vLLM v0 aborts the engine when a swap-out finds no CPU blocks ("Aborted due to the lack of CPU swap
            # space", vllm/core/scheduler.py _swap_out); kvsim would recompute instead, which is not what was asked
            raise KvsimError(
                "preemption_mode swap with swap_space_gib 0: there is no CPU swap space to preempt into; give "
                "--swap-space-gib > 0 (vLLM's default is 4) or use --preemption-mode recompute"
            )
        if self.scheduler == "vllm" and self.preemption_mode == "swap":
            raise KvsimError(
                "preemption_mode swap: vLLM v1 (--scheduler vllm) preempts by recompute only; "
                "use --scheduler vllm-v0 (vLLM v0.6.3) for swap"
            )
        if self.scheduler != "vllm":
            v1_only = [
                name
                for name, default in (
                    ("long_prefill_token_threshold", 0),
                    ("scheduler_reserve_full_isl", True),
                )
                if getattr(self, name) != default
            ]
            if v1_only:
                raise KvsimError(
                    f"{', '.join(v1_only)}: vLLM v1 option(s) of --scheduler vllm, not {self.scheduler!r}'s; "
                    "drop them or use --scheduler vllm"
                )
        _check_engine_options(self)
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise KvsimError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.watermark is not None and not 0.0 <= self.watermark < 1.0:
            raise KvsimError(f"watermark must be in [0, 1), got {self.watermark}")
        if self.swap_space_gib < 0:
            raise KvsimError(f"swap_space_gib must be >= 0, got {self.swap_space_gib}")
        if self.activation_reserve_bytes < 0:
            raise KvsimError(f"activation_reserve_bytes must be >= 0, got {self.activation_reserve_bytes}")
        for name in ("slo_ttft_s", "slo_tpot_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise KvsimError(f"{name} must be > 0 seconds (or unset), got {value}")
        if not self.allocator or not isinstance(self.allocator, str):
            raise KvsimError("allocator must be a spec string such as 'paged' or 'reserved:pow2'")
        if self.kv_capacity_bytes is not None:
            _check_kv_capacity(self)
        if self.scheduler == "vllm-v0" and self.max_num_batched_tokens is not None:
            _check_v0_token_budget(self)
        if self.scheduler in ("vllm", "vllm-v0") and (
            self.max_num_batched_tokens is not None or self.max_num_seqs is not None
        ):
            _check_budget_covers_seqs(self)

    @property
    def swap_space_bytes(self) -> int:
        return int(self.swap_space_gib * GIB)

    @property
    def resolved_enable_chunked_prefill(self) -> bool:
        """Unset: on for ``vllm`` (v1's ``SchedulerConfig``), off for the others."""
        if self.enable_chunked_prefill is not None:
            return self.enable_chunked_prefill
        return self.scheduler == "vllm"

    @property
    def resolved_watermark(self) -> float:
        """Unset: 0 for ``vllm`` (0.34's ``SchedulerConfig.watermark``), 0.01 for ``vllm-v0``."""
        if self.watermark is not None:
            return self.watermark
        return 0.0 if self.scheduler == "vllm" else V0_WATERMARK

    def _v1_batch_defaults(self, gpu_name: str, gpu_memory_bytes: int) -> tuple[int, int]:
        if gpu_memory_bytes >= V1_LARGE_GPU_BYTES:
            return V1_LARGE_DEFAULTS
        if gpu_memory_bytes >= V1_MEDIUM_GPU_BYTES and "a100" not in gpu_name.lower():
            return V1_MEDIUM_DEFAULTS
        return V1_SMALL_DEFAULTS

    def resolved_max_num_seqs(self, gpu_name: str = "", gpu_memory_bytes: int = 0) -> int:
        """Unset: ``vllm``'s by GPU (module docstring), 256 for the others."""
        if self.max_num_seqs is not None:
            return self.max_num_seqs
        if self.scheduler == "vllm":
            return self._v1_batch_defaults(gpu_name, gpu_memory_bytes)[1]
        return V0_MAX_NUM_SEQS

    def resolved_max_num_batched_tokens(
        self, max_model_len: int, gpu_name: str = "", gpu_memory_bytes: int = 0
    ) -> int:
        """Unset: ``vllm``'s by GPU, at least max_model_len without chunked prefill; the others v0.6.3's, 512
        with chunked prefill, else max(max_model_len, 2048). ``vllm`` without chunked prefill refuses a budget
        below max_model_len, as v1's ``SchedulerConfig`` does."""
        chunked = self.resolved_enable_chunked_prefill
        if self.scheduler == "vllm":
            if self.max_num_batched_tokens is not None:
                budget = self.max_num_batched_tokens
                if not chunked and budget < max_model_len:
                    raise KvsimError(
                        f"max_num_batched_tokens {budget} is below max_model_len {max_model_len} with chunked "
                        "prefill off: vLLM v1 refuses it (a prompt could never be scheduled); raise it, lower "
                        "max_model_len or turn chunked prefill on"
                    )
                return budget
            budget = self._v1_batch_defaults(gpu_name, gpu_memory_bytes)[0]
            return budget if chunked else max(max_model_len, budget)
        if self.max_num_batched_tokens is not None:
            return self.max_num_batched_tokens
        if chunked:
            return CHUNKED_PREFILL_MAX_NUM_BATCHED_TOKENS
        return max(max_model_len, MIN_MAX_NUM_BATCHED_TOKENS)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SimConfig:
        """Build from a TOML/JSON mapping; an unknown key is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KvsimError(
                f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        return cls(**values)
