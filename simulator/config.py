"""``SimConfig``: everything a simulation needs besides the trace (STYLE 3).

Field names are vLLM's where vLLM has the concept, and the CLI options and TOML keys map one to one onto them
(``--max-num-seqs`` <-> ``max_num_seqs``). Defaults follow vLLM v0.6.3 (``vllm/config.py`` ``SchedulerConfig``
and ``CacheConfig``, ``vllm/engine/arg_utils.py`` ``EngineArgs``): ``max_num_seqs=256``, ``block_size=16``,
``gpu_memory_utilization=0.9``, ``swap_space=4`` GiB, ``preemption_mode`` recompute, and
``max_num_batched_tokens = max(max_model_len, 2048)`` without chunked prefill, 512 with it, and the block
manager's ``watermark=0.01`` (``vllm/core/block_manager.py``: a request is admitted or swapped in only if 1% of
the KV blocks stay free after it).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from kvsim.errors import KvsimError

ROUTER_NAMES = ("round_robin", "least_outstanding")
SCHEDULER_NAMES = ("vllm", "orca", "static", "tgi")
PREEMPTION_MODES = ("recompute", "swap")

# vLLM v0.6.3 EngineArgs: max_num_batched_tokens when chunked prefill is on.
CHUNKED_PREFILL_MAX_NUM_BATCHED_TOKENS = 512
# vLLM v0.6.3 SchedulerConfig: the floor of max_num_batched_tokens without chunked prefill.
MIN_MAX_NUM_BATCHED_TOKENS = 2048
GIB = 2**30
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
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None  # None: vLLM's default for the chunked-prefill setting
    max_model_len: int | None = None  # None: the model's max context
    enable_chunked_prefill: bool = False
    preemption_mode: str = "recompute"
    watermark: float = 0.01  # vllm: admit only if this share of KV memory stays free after (vLLM v0 default)
    gpu_memory_utilization: float = 0.9
    swap_space_gib: float = 4.0  # CPU swap space per GPU (vLLM's ``swap_space``), GiB
    activation_reserve_bytes: int = 0  # per GPU, taken off KV capacity besides the weights
    kv_capacity_bytes: int | None = None  # per GPU; overrides the computed capacity (paper set-ups)
    # path of a cost profile JSON; None: the shipped one for the GPU, else roofline; "roofline": the GPU's
    # datasheet roofline even where a measured profile ships
    profile: str | None = None
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
        if isinstance(self.max_new_tokens, int) and not isinstance(self.max_new_tokens, bool):  # a TOML integer
            object.__setattr__(self, "max_new_tokens", str(self.max_new_tokens))
        _check_types(self)
        for name in ("tp", "num_replicas", "max_num_seqs"):
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
        for name in (
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
        if self.preemption_mode not in PREEMPTION_MODES:
            raise KvsimError(f"unknown preemption_mode {self.preemption_mode!r}; choose recompute or swap")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise KvsimError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if not 0.0 <= self.watermark < 1.0:
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

    @property
    def swap_space_bytes(self) -> int:
        return int(self.swap_space_gib * GIB)

    def resolved_max_num_batched_tokens(self, max_model_len: int) -> int:
        """vLLM's default when unset: 512 with chunked prefill, else max(max_model_len, 2048)."""
        if self.max_num_batched_tokens is not None:
            return self.max_num_batched_tokens
        if self.enable_chunked_prefill:
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
