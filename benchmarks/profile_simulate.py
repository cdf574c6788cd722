"""Where ``simulate()`` spends its Python: scheduling decisions and bytecodes per request (docs/performance.md).

    python benchmarks/profile_simulate.py                          # synthetic case, 3,000 requests
    python benchmarks/profile_simulate.py --case azure-conv --num-requests 3000 --top 30
    python benchmarks/profile_simulate.py --set scheduler=vllm-v0     # a variant of the case's configuration

Wall time on a shared machine moves by tens of percent; these counts do not. ``decisions`` counts the
engine's scheduling decisions (one ``complete_steps`` each) by kind: a prefill step, a decode window planned
through finishes, a decode window of the cohort, a step over every decoding request. ``bytecodes`` traces
every executed bytecode (``sys.settrace`` with opcode events: slow, so keep the trace short) and attributes
it to the function executing it. The traced run comes after a first, untraced run of the same requests.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_simulate import add_set_option, case_config, config_changes, synthetic_trace


def decisions(config, trace) -> collections.Counter:
    from kvsim.simulator import simulate
    from kvsim.simulator.schedulers.base import SchedulerBase

    counts: collections.Counter = collections.Counter()
    complete = SchedulerBase.complete_steps

    def counting(self, num_steps, end_s, step_ends=None):
        if self._prefills:
            kind = "prefill"
        elif getattr(self, "window_segments", ()):  # (absent before windows ran through finishes)
            kind = "window through finishes"
        elif self._cohort_stepped:
            kind = "cohort window"
        else:
            kind = "per-request window"
        counts[kind] += 1
        counts["steps"] += num_steps
        return complete(self, num_steps, end_s, *([step_ends] if step_ends is not None else []))

    SchedulerBase.complete_steps = counting
    try:
        simulate(config, trace)
    finally:
        SchedulerBase.complete_steps = complete
    return counts


def bytecodes(config, trace) -> collections.Counter:
    from kvsim.simulator import simulate

    counts: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):
        if event == "call":
            frame.f_trace_opcodes = True
        elif event == "opcode":
            code = frame.f_code
            counts[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return tracer

    simulate(config, trace)  # imports and caches first
    sys.settrace(tracer)
    try:
        simulate(config, trace)
    finally:
        sys.settrace(None)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("synthetic", "azure-conv"), default="synthetic")
    parser.add_argument("--num-requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=20, help="functions to list")
    add_set_option(parser)
    args = parser.parse_args()
    changes = config_changes(parser, args.set, [args.case])

    from kvsim.errors import KvsimError
    from kvsim.simulator import SimConfig
    from kvsim.traces.transforms import take_first

    config = SimConfig(**{**case_config(args.case), **changes})
    if args.case == "azure-conv":
        from kvsim.traces import load_trace

        trace = take_first(load_trace("azure-conv"), args.num_requests)
    else:
        trace = synthetic_trace(args.num_requests)
    num = len(trace)
    try:
        counts = decisions(config, trace)
    except KvsimError as error:  # a --set value that only building the run checks (an allocator spec)
        parser.error(f"--set: {error}")
    steps = counts.pop("steps")
    print(
        f"{args.case}, {num:,} requests: {steps / num:.2f} steps and {sum(counts.values()) / num:.2f} decisions per request"
    )
    for kind, count in counts.most_common():
        print(f"  {count / num:6.2f}  {kind}")
    codes = bytecodes(config, trace)
    print(f"bytecodes per request: {sum(codes.values()) / num:,.0f}")
    for name, count in codes.most_common(args.top):
        print(f"  {count / num:8.1f}  {name}")


if __name__ == "__main__":
    main()
