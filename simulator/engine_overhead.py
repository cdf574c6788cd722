"""The serving engine's host time: what the CPU adds to the GPU's step, per engine (DESIGN §5, "engine").

The cost model times the GPU's work; a serving engine also spends host time on every step (scheduling, input
preparation, turning sampled tokens into outputs, detokenization, streaming) and on every request (the API
server, tokenization). This module holds those terms for each engine kvsim models, each a named ``Param``
with its source, and the rule by which the engine's host time meets its GPU time:

- ``serial`` (``vllm-v0``, ``tgi``): a step lasts GPU + host.
- ``async`` (``vllm``, v1 0.34 with async scheduling, its default: ``vllm/config/vllm.py`` enables
  ``async_scheduling`` unless the model pools or the executor cannot): the host schedules and prepares step
  n + 1 while the GPU runs step n, so a step lasts max(GPU, host); the first step after an idle replica has
  nothing to hide behind and lasts GPU + host.
- ``num_scheduler_steps`` N > 1 (``vllm-v0``, v0.6's multi-step scheduling): the scheduler runs once per N
  decode steps. The step that starts a window (and every prefill step, a window of one) pays the scheduling
  host time; the N - 1 steps after it pay only ``inner_step_s``. What it costs is scheduling, not time, and
  lives in the scheduler (``schedulers/vllm_v0.py``): nothing joins a window once it runs, and a request that
  ends inside it keeps its slot (and its GPU work) to the window's end.

Host time of a scheduling step: ``step_s + per_seq_s · num_seqs + per_prefill_token_s · num_prefill_tokens``;
of a step inside a multi-step window: ``inner_step_s + per_seq_s · num_seqs`` (every step turns one token per
sequence into output). Within a decode window both are constant (a window's steps batch the same sequences),
so a window of k steps is timed in closed form, exactly as stepping times it (the engine's ``_host_*``).
Per request: ``request_s`` (HTTP request, tokenization and the response's last chunk) delays the request's
arrival at the scheduler, so it adds to TTFT and end-to-end latency alike.

Every parameter says where it comes from (``measured``, ``cited``, ``fitted``, ``assumed``) and a plausible
range with the reason; ``describe`` prints them in every output built on them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kvsim.errors import KvsimError

SOURCES = ("measured", "cited", "fitted", "assumed")
OVERLAPS = ("serial", "async")


@dataclass(frozen=True)
class Param:
    """One engine parameter: ``value`` (seconds), where it comes from, and a plausible range with the reason."""

    value: float
    source: str  # one of SOURCES
    low: float
    high: float
    why: (
        str  # the source in words (what was measured or fitted on what, or why the assumption), and the range
    )

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise KvsimError(f"Param.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not 0.0 <= self.low <= self.value <= self.high:
            raise KvsimError(
                f"Param: need 0 <= low <= value <= high, got {self.low}, {self.value}, {self.high}"
            )


@dataclass(frozen=True)
class EngineOverhead:
    """One engine's host-time terms (seconds). ``overlap``: how host time meets GPU time (module docstring)."""

    engine: str  # the kvsim scheduler name it belongs to
    version: str  # the engine version the values describe
    overlap: str
    step_s: Param  # host time of a scheduling step, constant part
    per_seq_s: Param  # host time per sequence in the batch, every step (output processing, detokenization)
    per_prefill_token_s: (
        Param  # input preparation per prefill token (position, slot mapping), scheduling steps
    )
    inner_step_s: Param  # host time of a step inside a multi-step window (launch, advance_step)
    request_s: Param  # per request: API server and tokenization, before the scheduler sees it

    def __post_init__(self) -> None:
        if self.overlap not in OVERLAPS:
            raise KvsimError(
                f"EngineOverhead.overlap must be one of {', '.join(OVERLAPS)}, got {self.overlap!r}"
            )

    def params(self) -> dict[str, Param]:
        """The parameters by name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type == "Param"}

    def with_values(self, **values: float) -> EngineOverhead:
        """A copy with some parameters' values replaced (fits and sensitivity runs); their ranges widen to
        hold the new value, their source and reason stay."""
        changed = {}
        for name, value in values.items():
            p = self.params()[name]
            changed[name] = dataclasses.replace(
                p, value=value, low=min(p.low, value), high=max(p.high, value)
            )
        return dataclasses.replace(self, **changed)

    def host_s(self, num_seqs: int, num_prefill_tokens: int) -> float:
        """Host time of a scheduling step batching ``num_seqs`` sequences and ``num_prefill_tokens`` prompt
        tokens."""
        return (
            self.step_s.value
            + self.per_seq_s.value * num_seqs
            + self.per_prefill_token_s.value * num_prefill_tokens
        )

    def inner_host_s(self, num_seqs: int) -> float:
        """Host time of a decode step inside a multi-step window."""
        return self.inner_step_s.value + self.per_seq_s.value * num_seqs

    def describe(self, num_scheduler_steps: int = 1) -> str:
        """One line for outputs: engine, overlap, and each parameter with its source."""
        parts = []
        for name, p in self.params().items():
            if name == "inner_step_s" and num_scheduler_steps == 1:
                continue
            parts.append(f"{name} {_fmt_s(p.value)} ({p.source})")
        steps = f", num_scheduler_steps {num_scheduler_steps}" if num_scheduler_steps > 1 else ""
        return f"engine {self.engine} ({self.version}, {self.overlap} host time{steps}): " + ", ".join(parts)


def _fmt_s(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


# ---- the parameters ----------------------------------------------------------------------------------------
# vLLM v0.6.0 (``vllm-v0``). Cited: the vLLM team's v0.6.0 post (blog.vllm.ai/2024/09/05/perf-update.html,
# "Performance Diagnosis") profiled v0.5.3 serving Llama 3 8B on one H100: "The HTTP API server takes 33% of the
# total execution time", 29% went to scheduling ("gathering the LLM results from the last step, scheduling the
# requests to run for the next step, and preparing these requests as inputs"), 38% to the GPU. v0.6.0 moved the
# API server to its own process, overlapped output processing with the GPU (async output processing) and
# scheduled once per N steps (multi-step): what remains per step was not published, so step_s, per_seq_s and
# inner_step_s are FITTED on the development set's H100 rows (least squares over log(kvsim / published) of
# throughput at QPS inf and mean TPOT at the points kvsim.cli.reproduce_blog.fitted_point keeps, Nelder-Mead over
# the logarithms of the three: scripts/fit_engine_overhead.py; docs/validation.md has the residuals; the A100 rows
# are predicted).
VLLM_V0 = EngineOverhead(
    engine="vllm-v0",
    version="vLLM v0.6.0",
    overlap="serial",
    step_s=Param(
        5.323e-3,
        "fitted",
        0.5e-3,
        6e-3,
        "fitted on the vllm-blog H100 rows (5.323 ms; the three fitted together: sum of squared log residuals "
        "0.302 over 30 points, docs/validation.md); range: v0.5.3's 29% scheduling share of an 8 to 20 ms step "
        "is 2.3 to 6 ms per step before v0.6.0's rewrite, 0.5 ms a floor for a Python scheduler pass",
    ),
    per_seq_s=Param(
        30.75e-6,
        "fitted",
        20e-6,
        150e-6,
        "fitted on the vllm-blog H100 rows (30.75 us; SSE 0.302 over 30 points, docs/validation.md), the GPU "
        "time having every whole-step term (KV write and sampling from the roofline, the elementwise kernels "
        "cited from Vidur's H100); range: Python output processing and streaming (append, detokenize, stop "
        "checks, one SSE chunk) of tens to 150 us per sequence and token",
    ),
    per_prefill_token_s=Param(
        0.1e-6,
        "assumed",
        0.0,
        0.5e-6,
        "assumed: v0's input preparation builds positions and slot mappings in Python lists, of order 0.1 us a "
        "token (an 8,192-token prefill step: 0.8 ms); range 0 (vectorised) to 0.5 us",
    ),
    inner_step_s=Param(
        0.2419e-3,
        "fitted",
        0.1e-3,
        3e-3,
        "fitted on the vllm-blog H100 rows (0.2419 ms; SSE 0.302 over 30 points, docs/validation.md); range: a "
        "multi-step window's later steps still launch the model (CUDA graph replay) and advance its inputs on "
        "the GPU, 0.1 to 3 ms of host work",
    ),
    request_s=Param(
        1.0e-3,
        "assumed",
        0.2e-3,
        5e-3,
        "assumed: HTTP parsing and tokenizing a few hundred tokens (fast tokenizers: well under a millisecond) "
        "plus the response's last chunk; range 0.2 to 5 ms",
    ),
)

# vLLM v1 (``vllm``, 0.34.0): async scheduling on by default (VllmConfig, vllm/config/vllm.py in 0.34.0), the
# API server and the engine core in separate processes, outputs detokenized in the front end. The scheduler's CPU
# time per sequence is measured (the conformance harness, on this machine's CPU); the rest is assumed.
VLLM_V1 = EngineOverhead(
    engine="vllm",
    version="vLLM 0.34.0",
    overlap="async",
    step_s=Param(
        0.5e-3,
        "assumed",
        0.05e-3,
        3e-3,
        "assumed: input preparation and launch of one step (the model runner's, not measured); the scheduler's "
        "own constant is small (schedule() + update_from_output() at batch 1: 41-59 us, measured, "
        "benchmarks/results/vllm_scheduler_cpu_time.csv); range 0.05 to 3 ms",
    ),
    per_seq_s=Param(
        25e-6,
        "measured",
        10e-6,
        40e-6,
        "measured: vLLM 0.34.0's schedule() + update_from_output() CPU time per step against batch size "
        "(benchmarks/results/vllm_scheduler_cpu_time.csv: slope 24.4 us/seq queue blocked by max_num_seqs, 25.9 "
        "by KV blocks) on this 2-core AMD EPYC under load 8 to 10; range: a server CPU without contention runs "
        "it faster (10 us), and it leaves out input preparation per sequence (40 us)",
    ),
    per_prefill_token_s=Param(
        0.02e-6,
        "assumed",
        0.0,
        0.2e-6,
        "assumed: v1 prepares inputs with numpy over persistent buffers; range 0 to 0.2 us a token",
    ),
    inner_step_s=Param(0.0, "assumed", 0.0, 0.0, "v1 has no multi-step scheduling (unused)"),
    request_s=Param(
        1.0e-3,
        "assumed",
        0.2e-3,
        5e-3,
        "assumed as vllm-v0's: HTTP, tokenization and the last chunk; range 0.2 to 5 ms",
    ),
)

# Hugging Face TGI 2.x (``tgi``): a Rust router and a Python model server, serial steps. No measurement:
# assumed, with the same constant as the cost model's former 1 ms placeholder.
TGI = EngineOverhead(
    engine="tgi",
    version="TGI 2.x",
    overlap="serial",
    step_s=Param(
        1.0e-3,
        "assumed",
        0.3e-3,
        4e-3,
        "assumed: the model server's batch filtering, concatenation and input preparation per step (Python); "
        "range 0.3 to 4 ms",
    ),
    per_seq_s=Param(
        10e-6,
        "assumed",
        2e-6,
        40e-6,
        "assumed: next-token choosers and stopping criteria per sequence (Python); range 2 to 40 us",
    ),
    per_prefill_token_s=Param(
        0.05e-6, "assumed", 0.0, 0.5e-6, "assumed: input tensors per token; 0 to 0.5 us"
    ),
    inner_step_s=Param(0.0, "assumed", 0.0, 0.0, "TGI has no multi-step scheduling (unused)"),
    request_s=Param(
        1.0e-3,
        "assumed",
        0.2e-3,
        5e-3,
        "assumed: HTTP, validation and tokenization in the router; 0.2 to 5 ms",
    ),
)

ENGINE_OVERHEADS: dict[str, EngineOverhead] = {"vllm-v0": VLLM_V0, "vllm": VLLM_V1, "tgi": TGI}


def engine_overhead_for(scheduler: str) -> EngineOverhead:
    """The term set of the engine that ``scheduler`` models; an error naming the choices for one without."""
    try:
        return ENGINE_OVERHEADS[scheduler]
    except KeyError:
        raise KvsimError(
            f"engine_overhead: no engine host-time model for scheduler {scheduler!r} (kvsim has them for "
            f"{', '.join(ENGINE_OVERHEADS)}); drop engine_overhead or pick one of those schedulers"
        ) from None


@dataclass(frozen=True)
class HostTime:
    """What one replica's step loop applies: an engine's terms, resolved for a run (overlap and window)."""

    overhead: EngineOverhead
    overlap: str  # the engine's, or "serial" where async scheduling was turned off
    num_scheduler_steps: int = 1

    def describe(self) -> str:
        text = self.overhead.describe(self.num_scheduler_steps)
        if self.overlap != self.overhead.overlap:
            text = text.replace(f"{self.overhead.overlap} host time", f"{self.overlap} host time")
        return text


def resolve_host_time(
    scheduler: str,
    *,
    num_scheduler_steps: int = 1,
    async_scheduling: bool | None = None,
    overhead: EngineOverhead | None = None,
) -> HostTime:
    """The host time of a run: ``scheduler``'s terms (or ``overhead``), with async scheduling as asked (None:
    the engine's default) and the multi-step window."""
    overhead = overhead or engine_overhead_for(scheduler)
    overlap = overhead.overlap
    if async_scheduling is not None:
        if async_scheduling and overlap != "async":
            raise KvsimError(
                f"async_scheduling: {overhead.version} ({scheduler!r}) has no async scheduling; drop it or use "
                "--scheduler vllm"
            )
        overlap = "async" if async_scheduling else "serial"
    return HostTime(overhead, overlap, num_scheduler_steps)


UNITS = {
    "step_s": "s",
    "per_seq_s": "s/seq",
    "per_prefill_token_s": "s/token",
    "inner_step_s": "s",
    "request_s": "s/request",
}


def term_name(engine: str, param: str) -> str:
    """The uncertainty framework's name of one parameter (issue 23): ``engine.vllm_v0.step_s``."""
    return f"engine.{engine.replace('-', '_')}.{param}"


def resolve_engine_overhead(engine_overhead: bool | None, scheduler: str, *, own_cost_model: bool) -> bool:
    """SimConfig.engine_overhead's None: on for an engine kvsim models, unless the caller brought its own cost
    model (it then stands for the whole step); an explicit True or False as given."""
    if engine_overhead is not None:
        return engine_overhead
    return scheduler in ENGINE_OVERHEADS and not own_cost_model


def host_time_for(config) -> HostTime | None:
    """The host time a run of ``config`` (a SimConfig) applies, None without ``engine_overhead``; each
    parameter at its value in the config's uncertainty case (``term_values``), else its nominal value."""
    if not config.engine_overhead:
        return None
    overhead = engine_overhead_for(config.scheduler)
    try:
        from kvsim.simulator.uncertainty.terms import term_value
    except ModuleNotFoundError as exc:  # issue 23's framework is not there (yet): every parameter nominal
        if exc.name is None or not "kvsim.simulator.uncertainty.terms".startswith(exc.name):
            raise
        term_value = None
    if term_value is not None:
        values = {
            name: term_value(config, term_name(overhead.engine, name), p.value)
            for name, p in overhead.params().items()
        }
        changed = {name: v for name, v in values.items() if v != overhead.params()[name].value}
        if changed:
            overhead = overhead.with_values(**changed)
    return resolve_host_time(
        config.scheduler,
        num_scheduler_steps=config.num_scheduler_steps,
        async_scheduling=config.async_scheduling,
        overhead=overhead,
    )


def uncertain_terms(config) -> list:
    """The engine's terms in force for ``config`` as ``UncertainTerm``s (issue 23's API), nominal = the value
    the run uses by default; none without ``engine_overhead``; ``inner_step_s`` only with multi-step windows."""
    if not resolve_engine_overhead(config.engine_overhead, config.scheduler, own_cost_model=False):
        return []
    from kvsim.simulator.uncertainty.terms import UncertainTerm

    overhead = engine_overhead_for(config.scheduler)
    terms = []
    for name, p in overhead.params().items():
        if name == "inner_step_s" and config.num_scheduler_steps == 1:
            continue
        terms.append(
            UncertainTerm(
                name=term_name(overhead.engine, name),
                nominal=p.value,
                low=p.low,
                high=p.high,
                unit=UNITS[name],
                kind=p.source,
                basis=p.why,
            )
        )
    return terms


def gpu_time_only(cost_model):
    """``cost_model`` without its placeholder host term (the profile's ``step_overhead``), which the engine
    model replaces; a cost model that has none (not profile-backed) is returned as it is."""
    profile = getattr(cost_model, "profile", None)
    terms = getattr(profile, "terms", None)
    if not terms or "step_overhead" not in terms:
        return cost_model
    step = terms["step_overhead"]
    zero = dataclasses.replace(step, params={k: 0.0 for k in step.params})
    stripped = dataclasses.replace(profile, terms={**terms, "step_overhead": zero})
    kwargs = {"sampling": cost_model.sampling} if hasattr(cost_model, "sampling") else {}
    gpu_only = type(cost_model)(stripped, cost_model.model, cost_model.tp, **kwargs)
    gpu_only.description = cost_model.description.replace("step_overhead", "step_overhead (0: engine model)")
    # the cost model's uncertain terms (issue 23) stay, but for the placeholder's, which the engine's replace
    terms_kept = getattr(cost_model, "uncertain_terms", ())
    gpu_only.uncertain_terms = tuple(t for t in terms_kept if t.name != "step_overhead_s")
    return gpu_only
