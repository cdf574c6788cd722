"""Line up vLLM's and kvsim's step records and say where they part (issue 20's table).

Two steps agree when they start at the same step, give the same requests the same prefill tokens, decode the
same requests (by count where kvsim's budget took only some decodes), preempt the same requests (vLLM reports
them as a set: their order within a step is not compared), and admit the same requests with the same
prefix-cached tokens. Steps are lined up by their number; a run that takes more steps than the other diverges
in each extra step. Per request, the first-token step, the finish step, the number of preemptions and the
cached tokens at first admission must be equal too, and kvsim's results with fast-forward on must equal its
stepped ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEP_FIELDS = ("start", "prefill", "decode", "num_decode_seqs", "preempted", "admitted")
REQUEST_FIELDS = ("first_token_step", "finish_step", "num_preemptions", "num_cached_tokens")


@dataclass
class CaseReport:
    name: str
    num_requests: int
    steps_vllm: int
    steps_kvsim: int
    first_divergent_step: int | None
    num_divergent_steps: int
    preemptions_vllm: int
    preemptions_kvsim: int
    mean_first_token_step_diff: float  # kvsim - vLLM, over requests with a first token on both sides
    cached_tokens_vllm: int  # over every admission (re-admissions after preemption included)
    cached_tokens_kvsim: int
    request_mismatches: dict[str, dict[str, tuple]] = field(
        default_factory=dict
    )  # id -> field -> (vllm, kvsim)
    fast_forward_mismatches: list[str] = field(default_factory=list)
    first_divergence: dict | None = None  # {"step", "vllm", "kvsim", "fields"}

    @property
    def ok(self) -> bool:
        return (
            not self.num_divergent_steps and not self.request_mismatches and not self.fast_forward_mismatches
        )

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["request_mismatches"] = {
            k: {f: list(v) for f, v in m.items()} for k, m in self.request_mismatches.items()
        }
        d["ok"] = self.ok
        return d


def step_differences(a: dict, b: dict) -> list[str]:
    """The fields in which step records ``a`` (vLLM) and ``b`` (kvsim) differ."""
    fields = []
    for name in STEP_FIELDS:
        if name == "decode" and (a["decode"] is None or b["decode"] is None):
            continue  # one side kept only the count: num_decode_seqs compares it
        if a[name] != b[name]:
            fields.append(name)
    return fields


def compare(name: str, vllm: dict, kvsim: dict) -> CaseReport:
    va, kb = vllm["steps"], kvsim["steps"]
    divergent, first = 0, None
    for k in range(max(len(va), len(kb))):
        if k >= len(va) or k >= len(kb):
            fields = ["missing in vLLM" if k >= len(va) else "missing in kvsim"]
        else:
            fields = step_differences(va[k], kb[k])
        if fields:
            divergent += 1
            if first is None:
                first = {
                    "step": k,
                    "fields": fields,
                    "vllm": va[k] if k < len(va) else None,
                    "kvsim": kb[k] if k < len(kb) else None,
                    "previous_vllm": va[k - 1] if 0 < k <= len(va) else None,
                    "previous_kvsim": kb[k - 1] if 0 < k <= len(kb) else None,
                }
    mismatches: dict[str, dict[str, tuple]] = {}
    diffs = []
    for rid, v in vllm["requests"].items():
        k = kvsim["requests"].get(rid, {})
        bad = {f: (v.get(f), k.get(f)) for f in REQUEST_FIELDS if v.get(f) != k.get(f)}
        if bad:
            mismatches[rid] = bad
        if v.get("first_token_step") is not None and k.get("first_token_step") is not None:
            diffs.append(k["first_token_step"] - v["first_token_step"])
    return CaseReport(
        name=name,
        num_requests=len(vllm["requests"]),
        steps_vllm=len(va),
        steps_kvsim=len(kb),
        first_divergent_step=None if first is None else first["step"],
        num_divergent_steps=divergent,
        preemptions_vllm=sum(len(s["preempted"]) for s in va),
        preemptions_kvsim=sum(len(s["preempted"]) for s in kb),
        mean_first_token_step_diff=sum(diffs) / len(diffs) if diffs else 0.0,
        cached_tokens_vllm=sum(sum(s["admitted"].values()) for s in va),
        cached_tokens_kvsim=sum(sum(s["admitted"].values()) for s in kb),
        request_mismatches=mismatches,
        fast_forward_mismatches=list(kvsim.get("fast_forward_mismatches", [])),
        first_divergence=first,
    )


def table(reports: list[CaseReport]) -> str:
    """The issue's table, one row per case (markdown)."""
    head = (
        "| case | requests | steps vLLM / kvsim | first divergent step | divergent steps | preemptions vLLM / kvsim "
        "| mean first-token step diff | cached tokens vLLM / kvsim | request mismatches | fast-forward |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in reports:
        rows.append(
            f"| {r.name} | {r.num_requests} | {r.steps_vllm:,} / {r.steps_kvsim:,} | "
            f"{'-' if r.first_divergent_step is None else r.first_divergent_step} | {r.num_divergent_steps:,} | "
            f"{r.preemptions_vllm:,} / {r.preemptions_kvsim:,} | {r.mean_first_token_step_diff:+.2f} | "
            f"{r.cached_tokens_vllm:,} / {r.cached_tokens_kvsim:,} | {len(r.request_mismatches)} | "
            f"{'same' if not r.fast_forward_mismatches else f'{len(r.fast_forward_mismatches)} differ'} |"
        )
    return "\n".join(rows)


def _brief(step: dict | None) -> str:
    if step is None:
        return "(no such step)"
    decode = step["decode"]
    decode_text = f"{step['num_decode_seqs']} seqs" + ("" if decode is None else f" {_ids(decode)}")
    return (
        f"start {step['start']}; prefill {step['prefill']}; decode {decode_text}; "
        f"preempted {step['preempted']}; admitted (cached tokens) {step['admitted']}"
    )


def _ids(ids: list[str], limit: int = 40) -> str:
    text = ",".join(ids[:limit])
    return f"[{text}{',...' if len(ids) > limit else ''}]"


def divergence_detail(report: CaseReport) -> str:
    """The first differing step, both sides (and the step before it), and the first request mismatches."""
    lines = []
    d = report.first_divergence
    if d is not None:
        lines.append(
            f"{report.name}: first divergent step {d['step']} (differs in: {', '.join(d['fields'])})"
        )
        if d["previous_vllm"] is not None or d["previous_kvsim"] is not None:
            lines.append(f"  step {d['step'] - 1} vLLM : {_brief(d['previous_vllm'])}")
            lines.append(f"  step {d['step'] - 1} kvsim: {_brief(d['previous_kvsim'])}")
        lines.append(f"  step {d['step']} vLLM : {_brief(d['vllm'])}")
        lines.append(f"  step {d['step']} kvsim: {_brief(d['kvsim'])}")
    if report.request_mismatches:
        items = sorted(report.request_mismatches.items(), key=lambda kv: int(kv[0]))[:5]
        text = "; ".join(
            f"request {rid}: " + ", ".join(f"{f} vLLM {v} kvsim {k}" for f, (v, k) in m.items())
            for rid, m in items
        )
        lines.append(f"  {len(report.request_mismatches)} requests differ, e.g. {text}")
    if report.fast_forward_mismatches:
        lines.append(
            f"  kvsim with fast-forward on differs from stepping for requests {_ids(report.fast_forward_mismatches)}"
        )
    return "\n".join(lines)
