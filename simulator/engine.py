"""The SimPy model: an arrival source, a router, and one step loop per replica (DESIGN §1, §7b; STYLE 1).

Story of a request: the source releases it at its ``arrival_s``; requests that could never be served are
rejected there with a reason; the router hands the others to a replica's scheduler; the replica's loop picks
it up at its next step start, prefills it, decodes it, and hands it to the recorder when it ends.

Speed: a replica's step costs O(1) plus O(requests it touches); with the decode cohort
(``schedulers/cohort.py``) a decode step touches none, whatever the batch. A step that ends before the next
arrival needs no SimPy event: the replica runs ahead on its own clock (``clock_s``) and yields to SimPy only
for steps that reach the next arrival, and when idle. A lone replica yields for nothing: it has no other
replica to be routed against, so it releases its arrivals itself (``ArrivalSource.release_until``) where it
would have yielded for them. Either way the arrivals at or before a step's end are released before that step
completes, and seen at the next step's start. When a step is pure decode, the loop asks the scheduler
how many steps can run before anything but decode progress changes (``decode_window``: a completion, memory
running out) and, if an arrival could be admitted (nothing queued), cuts the run at the step that ends at or
after the next arrival anywhere; it plans about that many steps, from the last step's duration. With nothing
queued a window may also run through completions (``schedulers/cohort_through.py``): it comes as segments of
unchanged batches (``window_segments``), each timed as its own batch; the finishes inside it are applied with
their steps' end times, and the rows the steps after them would write come back in ``window_rows``. Steps are
timed with one ``CostModel.decode_step_times`` call per window or segment (a cost model that opts in with
``single_decode_by_step_time`` is asked ``step_total_s`` — ``step_time(batch).total_s``, the same float — for
one step, ``decode_step_times_list`` for a short window and, optionally, ``decode_segment_times`` for all the
segments of a window at once: the same floats, no arrays). A cost model that says its decode steps do not
depend on their KV block count (``reads_decode_blocks``) is given none, and the scheduler computes none. The
replica keeps its own clock as a running sum of step durations (``np.cumsum`` or ``itertools.accumulate``, both
sequential), so ``fast_forward=False`` (windows of one step) reaches the very same float times. An idle replica's
next step has no step before it: ``previous_step_s`` is 0 there (overlapped vAttention mapping hides nothing).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate

import numpy as np
import simpy

from kvsim.simulator.batch import Batch
from kvsim.simulator.cost.base import CostModel
from kvsim.simulator.engine_overhead import HostTime
from kvsim.simulator.recorder import Recorder, parts_of
from kvsim.simulator.request_state import RequestState
from kvsim.simulator.router import ROUTERS
from kvsim.simulator.schedulers.base import SchedulerBase
from kvsim.simulator.schedulers.fast_forward import SHORT_BLOCKS_STEPS
from kvsim.traces.request import Trace

INF = float("inf")
MAX_WINDOW_STEPS = 1 << 14  # one window's cost array; a longer quiet stretch simply takes several windows


def _column(values: np.ndarray, typecode: str) -> array:
    """A trace column as an ``array.array`` of ``typecode`` (float64 or int64), the same numbers."""
    column = array(typecode)
    column.frombytes(
        np.ascontiguousarray(values, dtype=np.float64 if typecode == "d" else np.int64).tobytes()
    )
    return column


class ArrivalSource:
    """Releases the trace's requests at their arrival times and routes them.

    With several replicas it is a SimPy process that releases each request at its time, so that the router
    sees every replica as it is then. A lone replica has no one to be routed against: it pulls its arrivals
    itself (``release_until``) when its clock reaches them, at the same points of its loop where the process
    would have released them (before the step that ends at or after them completes), with no SimPy event."""

    def __init__(
        self,
        env: simpy.Environment,
        trace: Trace,
        replicas: list[Replica],
        recorder: Recorder,
        *,
        router: str,
        rejection_reason: Callable[[int, int, int], str | None],
        on_arrival: Callable[[int], None] | None = None,
        pull: bool | None = None,
        request_s: float = 0.0,
    ) -> None:
        self.env = env
        self.trace = trace
        self.replicas = replicas
        self.recorder = recorder
        self.route = ROUTERS[router]
        self.rejection_reason = rejection_reason
        self.on_arrival = on_arrival
        self.num_arrived = 0
        # ``request_s``: the engine's per-request host time (API server, tokenization; engine_overhead.py): a
        # request reaches the scheduler that long after it was sent, and its latencies count from the sending.
        arrival_s = trace.arrival_s + request_s if request_s else trace.arrival_s
        self.next_arrival_s = float(arrival_s[0])
        # The replica calls release_until, and no process runs; None: when there is one replica (tests force
        # the process to check that both give the same run).
        self.pulled = len(replicas) == 1 if pull is None else pull
        assert not self.pulled or len(replicas) == 1, "only a lone replica can pull its arrivals"
        # The columns as arrays of machine numbers: indexing gives the same Python floats and ints as a list's,
        # but unlike lists of a million numbers they hold no references for the garbage collector to walk at
        # every full collection (at CPython's default thresholds: 1.1 s of full collections in a
        # 1,000,000-request run with lists, 0.5 s with arrays).
        self._arrival_s = _column(arrival_s, "d")
        self._request_id = _column(trace.request_id, "q")
        self._prompt = _column(trace.num_prompt_tokens, "q")
        self._output = _column(trace.num_output_tokens, "q")
        num_seqs = np.ones(len(trace), dtype=np.int64)
        if trace.n is not None:
            num_seqs = np.maximum(num_seqs, trace.n)
        if trace.beam_width is not None:
            num_seqs = np.maximum(num_seqs, trace.beam_width)
        self._num_seqs = _column(num_seqs, "q")
        self._hashes = trace.prefix_block_hashes
        if not self.pulled:
            env.process(self.run())

    def run(self):
        env = self.env
        while self.next_arrival_s < INF:
            delay = self.next_arrival_s - env.now
            if delay > 0:
                yield env.timeout(delay)  # then look again: a replica may have released it meanwhile
            else:
                self._release(self.num_arrived)

    def release_until(self, time_s: float) -> None:
        """Release every request arriving at or before ``time_s`` (a lone replica's pull)."""
        while self.next_arrival_s <= time_s:
            self._release(self.num_arrived)

    def _release(self, i: int) -> None:
        """Request ``i`` arrives: rejected with a reason, or routed to a replica's queue."""
        self.num_arrived = i + 1
        arrival_s = self._arrival_s
        self.next_arrival_s = arrival_s[i + 1] if i + 1 < len(arrival_s) else INF
        if self.on_arrival is not None:
            self.on_arrival(i + 1)
        request_id, time_s = self._request_id[i], arrival_s[i]
        prompt, output, num_seqs = self._prompt[i], self._output[i], self._num_seqs[i]
        if self.next_arrival_s == INF:  # the last one: the trace's columns are no longer needed
            self._arrival_s = self._request_id = self._prompt = self._output = self._num_seqs = array("q")
        reason = self.rejection_reason(prompt, output, num_seqs)
        if reason is not None:
            self.recorder.reject(i, reason)
            return
        hashes = None if self._hashes is None else self._hashes[i]
        req = RequestState(i, request_id, time_s, prompt, output, num_seqs, hashes)
        replicas = self.replicas
        replica = replicas[self.route(replicas, i) if len(replicas) > 1 else 0]
        req.replica = replica.index
        replica.submit(req)


class Replica:
    """One serving instance (a TP group): a scheduler over its allocator, timed by the cost model."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        scheduler: SchedulerBase,
        cost_model: CostModel,
        recorder: Recorder,
        *,
        fast_forward: bool,
        host: HostTime | None = None,
    ) -> None:
        self.env = env
        self.index = index
        # The engine's host time per step (engine_overhead.py), or None: the cost model's step is the step.
        self.host = host
        if host is not None:  # the terms as floats, in host_s's order (a scheduling step's host time)
            terms = host.overhead
            self._host_terms = (terms.step_s.value, terms.per_seq_s.value, terms.per_prefill_token_s.value)
            self._host_async = host.overlap == "async"
        self.scheduler = scheduler
        self.cost_model = cost_model
        self.recorder = recorder
        self.timeline = recorder.timelines[index]
        self.fast_forward = fast_forward
        self.num_outstanding = 0  # routed here and not finished (the least-outstanding router reads it)
        self.source: ArrivalSource | None = None
        self.clock_s = 0.0
        self._wakeup: simpy.Event | None = None
        # A cost model may time a segmented window in one call, without a Batch per segment (optional).
        self._segment_times = getattr(cost_model, "decode_segment_times", None)
        # Windows need per-step block counts only for a cost model that reads them (optional
        # ``reads_decode_blocks``; without it, assume it does).
        reads_blocks = getattr(cost_model, "reads_decode_blocks", None)
        kernel = scheduler.allocator.attention_kernel
        scheduler.window_block_counts = reads_blocks is None or reads_blocks(kernel)
        env.process(self.run())

    def submit(self, req: RequestState) -> None:
        self.scheduler.add_request(req)
        self.num_outstanding += 1
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    def run(self):
        env = self.env
        sched = self.scheduler
        cost = self.cost_model
        # Cost models that opt in are timed by step_time for one-step decode windows; others (wrappers that
        # watch every decode step) keep getting decode_step_times.
        single_by_step_time = getattr(cost, "single_decode_by_step_time", False)
        step_times_list = getattr(cost, "decode_step_times_list", None) if single_by_step_time else None
        step_s = getattr(cost, "step_total_s", None)  # step_time(batch).total_s, faster (optional)
        if step_s is None:
            step_s = lambda batch: cost.step_time(batch).total_s  # noqa: E731
        recorder = self.recorder
        source = self.source
        assert source is not None, "wire the arrival source before running"
        # The timeline's breakdown as a tuple in PARTS order, when the allocator can give it without building
        # a MemoryBreakdown (optional ``breakdown_parts``).
        breakdown_parts = getattr(sched.allocator, "breakdown_parts", None)
        if breakdown_parts is None:
            breakdown = sched.allocator.breakdown
            breakdown_parts = lambda: parts_of(breakdown())  # noqa: E731
        add_row = self.timeline.add_row
        add_window_row = self.timeline.add_window_row
        segment_times = self._segment_times
        window_limit = MAX_WINDOW_STEPS if self.fast_forward else 1
        host = self.host
        with_host = self._with_host
        # a step's host time where the scheduler runs at every step (every engine but vllm-v0's multi-step)
        one_step_with_host = (
            self._one_step_with_host if host is not None and host.num_scheduler_steps == 1 else None
        )
        host_busy = False  # a step ran just before this one (async scheduling hid its host time behind it)
        guess_step_s = 0.0  # the last decode step's duration: how many steps the next arrival is away
        pulled = source.pulled  # a lone replica releases its arrivals itself (ArrivalSource)
        if pulled:
            source.release_until(self.clock_s)
        while True:
            now = self.clock_s
            batch = sched.schedule(now)
            if batch is None and (sched.waiting or sched.swapped):
                # Each call admits, swaps in or frees something; a swapped-out request that cannot come back
                # even to the empty GPU takes two: one turns it into a recompute, the next admits it.
                retries = len(sched.waiting) + 2 * len(sched.swapped)
                while batch is None and (sched.waiting or sched.swapped):
                    # This step's preemptions emptied the replica: schedule again, now with memory to spare.
                    assert retries > 0, "a replica with queued work and nothing running scheduled nothing"
                    retries -= 1
                    batch = sched.schedule(now)
            if sched.dropped:
                self._drain_dropped()
            if batch is None:
                num_seqs = num_tokens = 0
            else:
                prefill_q_lens = batch.prefill_q_lens
                num_seqs = num_tokens = batch.num_decode_seqs
                if prefill_q_lens:
                    num_seqs += len(prefill_q_lens)
                    num_tokens += sum(prefill_q_lens)
            if sched.changed:
                sched.changed = False
                add_row(
                    now,
                    breakdown_parts(),
                    sched.is_saturated,
                    len(sched.running),
                    len(sched.waiting),
                    len(sched.swapped),
                    num_seqs,
                    num_tokens,
                )
            if batch is None:
                # Idle: the next step has no step before it for allocator work (overlapped mapping) or host work
                # (async scheduling) to hide in.
                sched.previous_step_s = 0.0
                host_busy = False
                if pulled:  # idle until the next arrival, if any
                    if source.next_arrival_s == INF:
                        return
                    self.clock_s = source.next_arrival_s
                    source.release_until(self.clock_s)
                    continue
                self._wakeup = env.event()
                yield self._wakeup
                self._wakeup = None
                self.clock_s = env.now
                continue
            next_arrival_s = source.next_arrival_s
            num_steps = 1
            segments = ()  # a window planned through finishes (schedulers/cohort_through.py)
            if not prefill_q_lens:
                limit = window_limit
                admits = sched.admits_arrivals
                if admits and limit > 1 and guess_step_s > 0.0 and next_arrival_s < INF:
                    # A window cut at the next arrival (below) needs only the steps before it: plan about
                    # that many (any window length is exact; a short guess costs one more window).
                    limit = min(limit, int((next_arrival_s - now) / guess_step_s * 1.05) + 1)
                num_steps, blocks = sched.decode_window(limit)
            if num_steps == 1 and (prefill_q_lens or single_by_step_time):
                # decode_step_times' element 0 is step_time(batch).total_s bit for bit (its contract); with
                # allocator time a longer window takes step_s(batch) too: plain floats, no arrays, for the
                # commonest window.
                if host is None:
                    end_s = now + step_s(batch)
                elif one_step_with_host is not None:
                    end_s = now + one_step_with_host(
                        step_s(batch), host_busy, num_seqs, num_tokens - batch.num_decode_seqs
                    )
                else:
                    end_s = (
                        now
                        + with_host(
                            [step_s(batch)],
                            host_busy,
                            sched.multi_step_pos,
                            num_seqs,
                            num_tokens - batch.num_decode_seqs,
                            None,
                        )[0]
                    )
                if not prefill_q_lens:
                    guess_step_s = end_s - now
                sched.previous_step_s = end_s - now
            else:
                segments = sched.window_segments
                overhead_s = batch.allocator_overhead_s
                batch.allocator_overhead_s = 0.0
                # a window whose block counts came as a list is timed with Python floats
                short = segments or (step_times_list is not None and num_steps <= SHORT_BLOCKS_STEPS)
                if segments:
                    if segment_times is not None:
                        durations = segment_times(batch.attention_kernel, segments)
                    else:
                        durations = self._segment_durations(batch, segments, step_times_list)
                elif short:  # Python floats: the same values as the arrays, cheaper for a few steps
                    if blocks is not None and not isinstance(blocks, list):
                        blocks = blocks.tolist()
                    durations = step_times_list(batch, num_steps, blocks)
                else:
                    durations = cost.decode_step_times(batch, num_steps, blocks)
                batch.allocator_overhead_s = overhead_s
                if overhead_s:  # the first step as a one-step window times it: stepping's float
                    durations[0] = step_s(batch) if single_by_step_time else durations[0] + overhead_s
                if host is not None:  # decode steps: one token per sequence, no prefill tokens
                    durations = with_host(durations, host_busy, sched.multi_step_pos, num_seqs, 0, segments)
                durations[0] = now + durations[0]  # the cumsum then starts at now: the same additions
                ends = list(accumulate(durations)) if short else np.cumsum(durations)
                if admits:
                    # Cut at the first step ending at or after the next arrival: it is seen at the next start.
                    if short:
                        cut = bisect_left(ends, next_arrival_s) + 1
                    else:
                        cut = int(np.searchsorted(ends, next_arrival_s, side="left")) + 1
                    if cut < num_steps:
                        num_steps = cut
                end_s = float(ends[num_steps - 1])
                sched.previous_step_s = guess_step_s = end_s - (
                    float(ends[num_steps - 2]) if num_steps > 1 else now
                )
            finished_early = 0
            if segments:  # its finishes before the last step precede the next arrival: the router sees them
                finished_early = self._record_segments(segments, num_steps)
                self.num_outstanding -= finished_early
            if end_s >= next_arrival_s:
                if not pulled:  # the other replicas catch up to end_s, arrivals before it are routed
                    yield env.timeout(max(0.0, end_s - env.now))
                # Arrivals at or before the step's end are seen at the next step's start: one arriving exactly
                # at end_s too (whose own event may come after this replica's in SimPy's queue).
                source.release_until(end_s)
            # else: run ahead without a SimPy event. Replicas interact only through arrivals, and every
            # arrival before end_s has been released (this loop yields whenever a step reaches the next one),
            # so nothing can happen in the simulation before end_s that this replica would see.
            self.clock_s = end_s
            host_busy = True
            if segments:
                sched.complete_steps(num_steps, end_s, ends)
                for row in sched.window_rows:
                    add_window_row(*row)
                sched.window_rows.clear()
            else:
                sched.complete_steps(num_steps, end_s)
                recorder.add_steps(num_steps, num_steps * num_seqs, num_steps * num_tokens, num_seqs)
            if sched.dropped:
                self._drain_dropped()
            if sched.finished:
                recorder.finish(sched.finished)
                self.num_outstanding -= len(sched.finished) - finished_early
                sched.finished.clear()

    def _with_host(
        self, durations, busy: bool, position: int, num_seqs: int, num_prefill_tokens: int, segments
    ):
        """``durations`` (the GPU's, [k] steps of one window: a list or an array) with the engine's host time
        (engine_overhead.py), the same floats step by step as for a window of one: each step's host time
        ``h`` (a scheduling step's at window positions ``position + i ≡ 0 (mod num_scheduler_steps)``, else an
        inner step's), then serial: GPU + h; async: max(GPU, h), but GPU + h for a first step after idling.
        ``segments``: the window's segments (cohort_through.py), each with its own number of sequences."""
        host = self.host
        terms, n = host.overhead, host.num_scheduler_steps
        if n == 1:
            step_host_s, per_seq_s, per_token_s = self._host_terms
            overlap_async = self._host_async
            if not segments:
                h = self._host_s(num_seqs, num_prefill_tokens)
                if overlap_async:
                    first = durations[0] + h
                    if isinstance(durations, list):
                        if min(durations) < h:  # else every max(d, h) is d: the list as it is
                            durations = [d if d > h else h for d in durations]
                    else:
                        durations = np.maximum(durations, h)
                    if not busy:
                        durations[0] = first
                    return durations
                if isinstance(durations, list):
                    return [d + h for d in durations]
                durations += h
                return durations
            # A window through finishes (a list): each segment's steps batch its own sequences; the first
            # step alone adds the prefill tokens (none in a decode window).
            if overlap_async and min(durations) >= self._host_s(
                max(seqs for _, seqs, *_ in segments), num_prefill_tokens
            ):  # no step is shorter than the most host time of any: every max(d, h) is d
                if not busy:
                    durations[0] += self._host_s(segments[0][1], num_prefill_tokens)
                return durations
            out: list[float] = []
            i, k = 0, len(durations)
            first_h = None
            for steps, seqs, *_ in segments:
                if i >= k:
                    break
                h = step_host_s + per_seq_s * seqs + per_token_s * (num_prefill_tokens if i == 0 else 0)
                if first_h is None:
                    first_h = h
                chunk = durations[i : i + steps]
                if overlap_async:
                    out += chunk if min(chunk) >= h else [d if d > h else h for d in chunk]
                else:
                    out += [d + h for d in chunk]
                i += steps
            if overlap_async and not busy:
                out[0] = durations[0] + first_h
            return out
        if segments:
            seqs = [num for steps, num, *_ in segments for _ in range(steps)][: len(durations)]
        else:
            seqs = None
        # Multi-step windows (vllm-v0's, serial): a scheduling step's host time at window positions, an inner
        # step's elsewhere; step by step where segments give each step its own sequences.
        if seqs is None and not isinstance(durations, list):  # a long multi-step window: by slices
            first = (-position) % n  # the window's first scheduling step
            h_sched, h_inner = terms.host_s(num_seqs, 0), terms.inner_host_s(num_seqs)
            out = durations + h_inner
            out[first::n] = durations[first::n] + h_sched
            return out
        k = len(durations)
        out = durations if isinstance(durations, list) else durations.copy()
        for i in range(k):
            seqs_i = num_seqs if seqs is None else seqs[i]
            if (position + i) % n == 0:
                h = terms.host_s(seqs_i, num_prefill_tokens if i == 0 else 0)
            else:
                h = terms.inner_host_s(seqs_i)
            d = durations[i]
            if host.overlap == "async" and (busy or i > 0):
                out[i] = d if d > h else h
            else:
                out[i] = d + h
        return out

    def _host_s(self, num_seqs: int, num_prefill_tokens: int) -> float:
        """The host time of a scheduling step (``num_scheduler_steps`` 1): EngineOverhead.host_s's float."""
        step_host_s, per_seq_s, per_token_s = self._host_terms
        return step_host_s + per_seq_s * num_seqs + per_token_s * num_prefill_tokens

    def _one_step_with_host(self, gpu_s: float, busy: bool, num_seqs: int, num_prefill_tokens: int) -> float:
        """``_with_host([gpu_s], ...)[0]`` for one step where every step schedules (no list; once per step):
        serial, or async after idling, GPU + h; async behind a step, max(GPU, h)."""
        step_host_s, per_seq_s, per_token_s = self._host_terms
        h = step_host_s + per_seq_s * num_seqs + per_token_s * num_prefill_tokens  # _host_s, inline
        if busy and self._host_async:
            return gpu_s if gpu_s > h else h
        return gpu_s + h

    def _segment_durations(self, batch: Batch, segments, step_times_list) -> list[float]:
        """Step durations of a window planned through finishes, for a cost model without
        ``decode_segment_times``: each segment timed as the decode batch of its members (the first is
        ``batch`` itself), so every step is what stepping would time."""
        durations = []
        for num_steps, num_seqs, kv_tokens, blocks, _ in segments:
            if durations:
                kv_blocks = batch.decode_kv_blocks if blocks is None else blocks[0]
                batch = Batch(
                    num_decode_seqs=num_seqs,
                    decode_kv_tokens=kv_tokens,
                    decode_kv_blocks=kv_blocks,
                    attention_kernel=batch.attention_kernel,
                    block_size=batch.block_size,
                )
            if step_times_list is not None:
                durations += step_times_list(batch, num_steps, blocks)
            else:
                durations += self.cost_model.decode_step_times(batch, num_steps, blocks).tolist()
        return durations

    def _record_segments(self, segments, num_steps: int) -> int:
        """The recorder's step counts for the first ``num_steps`` steps of a segmented window; the number of
        members that finish before its last step."""
        done = finished_early = seq_steps = 0
        for steps, num_seqs, _, _, num_finishing in segments:
            take = min(steps, num_steps - done)
            seq_steps += take * num_seqs
            done += take
            if done == num_steps:
                break
            finished_early += num_finishing
        # A decode step batches one token per sequence; the first segment has the most sequences.
        self.recorder.add_steps(num_steps, seq_steps, seq_steps, segments[0][1])
        return finished_early

    def _drain_dropped(self) -> None:
        for req, reason in self.scheduler.dropped:
            self.recorder.reject(req.index, reason)
        self.num_outstanding -= len(self.scheduler.dropped)
        self.scheduler.dropped.clear()
