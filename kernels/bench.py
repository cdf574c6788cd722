"""Benchmark of the attention kernels: achieved bandwidth (decode) and TFLOP/s (prefill) against the peak.

    python -m kvsim.kernels.bench --out results.csv [--peak-gbps G] [--peak-tflops T] [--quick]

- decode: batch x context x (num_heads, num_kv_heads) at head_dim 128, paged (block 16, shuffled block ids)
  and contiguous at equal shapes; latency, bytes read (K, V and q) / latency, fraction of the HBM peak, and
  the paged/contiguous latency ratio. At the headline shape (Llama-3-8B, batch 64 x 4,096 tokens) it also
  sweeps block_size and num_kv_splits.
- prefill: causal FLOPs (see prefill.py) / latency, fraction of the FP16 tensor peak; whole prompts and one
  chunked-prefill case, paged and contiguous.
- sliding window (`window` column; Mistral-7B-v0.1's 4,096 tokens): decode and prefill over 16K-token
  contexts, so bytes and FLOPs count only the keys inside the window; the cost model charges
  min(context, window) keys for such layers.
Writes one CSV row per measurement and a `<out>_summary.txt`; `--budget-s` skips what is left after that
long (the headline shapes run first). On a GPU, `latency_us` is the GPU's time alone (median of CUDA-event
timings with the L2 flushed and the host's launch hidden, `kvsim.calibrate.timing`: what an engine replaying
CUDA graphs sees), and `host_launch_us` is what launching the call from Python costs the host (the Triton
launcher and the wrapper's checks), which an eager engine pays per layer. Timed naively (as
triton.testing.do_bench does), decode calls under ~50 us on an H200 measured the host's launch instead of the
kernel. Without a GPU, runs tiny shapes in Triton's interpreter, and its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from functools import partial
from pathlib import Path

# (num_heads, num_kv_heads) at head_dim 128: Llama-3-8B (GQA 4), Llama-2-7B (MHA), and an MQA model.
HEAD_CONFIGS = {"llama3-8b": (32, 8), "mha-32": (32, 32), "mqa-32": (32, 1), "tiny-gqa": (4, 2)}
HEADLINE = dict(heads="llama3-8b", batch=64, context=4096)  # the goal: >= 70% of HBM peak here
MAX_DECODE_TOKENS = 1 << 19  # batch x context cap: 512K tokens of MHA K+V in fp16 is 8.6 GB per layout

COLUMNS = [
    "kind", "layout", "heads", "num_heads", "num_kv_heads", "head_dim", "dtype", "batch", "context", "q_len",
    "block_size", "num_kv_splits", "latency_us", "bytes", "achieved_gbps", "peak_gbps", "frac_hbm_peak",
    "flops", "achieved_tflops", "peak_tflops", "frac_flops_peak", "paged_over_contiguous", "host_launch_us",
    "window", "device",
]  # fmt: skip
WINDOW = 4096  # Mistral-7B-v0.1's sliding_window (its config.json), the windowed shapes' window


def decode_grid(quick: bool) -> list[dict]:
    """Shapes of the decode sweep: dicts of heads, batch, context, block_size, num_kv_splits (None: auto)."""
    if quick:
        return [
            dict(heads="tiny-gqa", batch=2, context=80, block_size=16, num_kv_splits=None),
            dict(heads="tiny-gqa", batch=2, context=80, window=24, block_size=16, num_kv_splits=None),
        ]
    # the headline shape first, so a run cut short by --budget-s still measures what the goals are about
    grid = [dict(HEADLINE, block_size=16, num_kv_splits=None)]
    grid += [dict(heads="llama3-8b", batch=b, context=16384, window=WINDOW, block_size=16, num_kv_splits=None)
             for b in (8, 32)]  # fmt: skip
    grid += [dict(HEADLINE, block_size=16, num_kv_splits=s) for s in (1, 2, 4, 8)]
    grid += [dict(HEADLINE, block_size=bs, num_kv_splits=None) for bs in (8, 32, 64, 128, 256)]
    grid += [
        dict(heads=heads, batch=batch, context=context, block_size=16, num_kv_splits=None)
        for heads in ("llama3-8b", "mha-32", "mqa-32")
        for batch in (1, 8, 32, 64, 128)
        for context in (1024, 4096, 16384)
        if batch * context <= MAX_DECODE_TOKENS
        and dict(heads=heads, batch=batch, context=context) != HEADLINE
    ]
    return grid


def prefill_grid(quick: bool) -> list[dict]:
    """Shapes of the prefill sweep: batch sequences of `context` tokens, the last q_len of them new."""
    if quick:
        return [
            dict(heads="tiny-gqa", batch=1, context=96, q_len=96, block_size=16),
            dict(heads="tiny-gqa", batch=1, context=96, q_len=96, block_size=16, window=40),
        ]
    return [
        dict(heads="llama3-8b", batch=batch, context=context, q_len=context, block_size=16)
        for batch, context in ((16, 512), (4, 2048), (1, 8192))
    ] + [
        dict(heads="llama3-8b", batch=1, context=16384, q_len=16384, block_size=16, window=WINDOW),
        dict(heads="llama3-8b", batch=4, context=4096, q_len=512, block_size=16),
    ]


def windowed_pairs(context: int, q_len: int, window: int | None) -> int:
    """(query, key) pairs attended by the last q_len queries of a `context`-token sequence: query at position
    p sees min(p + 1, window) keys (all p + 1 without a window)."""

    def first(n: int) -> int:  # pairs of the queries at positions 0 .. n - 1
        w = window or n
        return w * (w + 1) // 2 + (n - w) * w if n > w else n * (n + 1) // 2

    return first(context) - first(context - q_len)


def _decode_inputs(torch, shape: dict, dtype, device: str, gen):
    num_heads, num_kv_heads = HEAD_CONFIGS[shape["heads"]]
    batch, context, block_size = shape["batch"], shape["context"], shape["block_size"]
    q = torch.randn((batch, num_heads, 128), dtype=dtype, device=device)
    blocks_per_seq = -(-context // block_size)
    num_blocks = batch * blocks_per_seq
    k_cache = torch.randn((num_blocks, block_size, num_kv_heads, 128), dtype=dtype, device=device)
    v_cache = torch.randn_like(k_cache)
    # shuffled physical blocks, as a long-running server's free-block queue hands them out
    block_table = torch.randperm(num_blocks, generator=gen).to(torch.int32).view(batch, blocks_per_seq)
    seq_lens = torch.full((batch,), context, dtype=torch.int32, device=device)
    k = torch.randn((batch, context, num_kv_heads, 128), dtype=dtype, device=device)
    v = torch.randn_like(k)
    return q, k_cache, v_cache, block_table.to(device), seq_lens, k, v


def run(args: argparse.Namespace) -> list[dict]:
    on_gpu = args.device == "cuda"
    if not on_gpu:  # must precede the first triton import: kernels are decorated at import
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    from kvsim.kernels import (
        contiguous_decode_attention,
        contiguous_prefill_attention,
        paged_decode_attention,
        paged_prefill_attention,
    )
    from kvsim.kernels.devices import peak_for
    from kvsim.kernels.heuristics import plan_kv_splits

    device_name = torch.cuda.get_device_name() if on_gpu else "cpu (Triton interpreter)"
    table = peak_for(device_name) if on_gpu else None
    peak_gbps = args.peak_gbps or (table.hbm_gbps if table else None)
    peak_tflops = args.peak_tflops or (table.fp16_tflops if table else None)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    gen = torch.Generator().manual_seed(args.seed)

    timer = None
    if on_gpu:
        from kvsim.calibrate.timing import Timer

        timer = Timer("cuda", target_s=0.1, min_reps=10, max_reps=200, warmup=10)

    def time_us(fn) -> tuple[float, float | str]:
        """(GPU time, host launch time) in us; on CPU one wall-clock run, and no launch time."""
        if timer is not None:
            return 1e6 * timer.time(fn).median_s, round(1e6 * timer.host_launch_s(fn, tries=5), 1)
        return 1e6 * _wall_s(fn), ""  # CPU interpreter: one run; the number is only a smoke test

    def row(kind, layout, shape, latency_us, num_bytes, flops, **extra) -> dict:
        num_heads, num_kv_heads = HEAD_CONFIGS[shape["heads"]]
        gbps = num_bytes / latency_us / 1e3
        tflops = flops / latency_us / 1e6 if flops else None
        return dict(
            kind=kind, layout=layout, heads=shape["heads"], num_heads=num_heads, num_kv_heads=num_kv_heads,
            head_dim=128, dtype=args.dtype, batch=shape["batch"], context=shape["context"],
            block_size=shape["block_size"] if layout == "paged" else "", latency_us=round(latency_us, 2),
            bytes=num_bytes, achieved_gbps=round(gbps, 1), peak_gbps=peak_gbps or "",
            frac_hbm_peak=round(gbps / peak_gbps, 3) if peak_gbps and kind == "decode" else "",
            flops=flops or "", achieved_tflops=round(tflops, 2) if tflops else "", peak_tflops=peak_tflops or "",
            frac_flops_peak=round(tflops / peak_tflops, 3) if tflops and peak_tflops else "",
            device=device_name, **extra,
        )  # fmt: skip

    rows = []
    start_s = time.perf_counter()

    def out_of_budget(kind: str, shape: dict) -> bool:
        share = 0.8 if kind == "decode" else 1.0  # leave prefill a fifth of the budget
        over = args.budget_s is not None and time.perf_counter() - start_s > share * args.budget_s
        if over:
            print(f"--budget-s {args.budget_s} reached: skipped {kind} {shape}", flush=True)
        return over

    for shape in decode_grid(args.quick):
        if out_of_budget("decode", shape):
            continue
        num_heads, num_kv_heads = HEAD_CONFIGS[shape["heads"]]
        batch, context, window = shape["batch"], shape["context"], shape.get("window")
        attended = min(context, window or context)  # keys each new token reads
        q, k_cache, v_cache, block_table, seq_lens, k, v = _decode_inputs(
            torch, shape, dtype, args.device, gen
        )
        splits, _ = plan_kv_splits(
            batch, num_kv_heads, attended, 128, dtype, q.device, shape["num_kv_splits"]
        )
        # vouched lengths: no host sync is timed
        kw = dict(num_kv_splits=splits, max_seq_len=context, window=window)
        paged_us, paged_host = time_us(
            partial(paged_decode_attention, q, k_cache, v_cache, block_table, seq_lens, **kw)
        )
        contiguous_us, contiguous_host = time_us(
            partial(contiguous_decode_attention, q, k, v, seq_lens, **kw)
        )
        num_bytes = (2 * batch * attended * num_kv_heads + batch * num_heads) * 128 * q.element_size()
        flops = 4 * batch * attended * num_heads * 128
        ratio = round(paged_us / contiguous_us, 3)
        rows.append(row("decode", "paged", shape, paged_us, num_bytes, flops, q_len=1, num_kv_splits=splits,
                        paged_over_contiguous=ratio, host_launch_us=paged_host, window=window or ""))  # fmt: skip
        rows.append(row("decode", "contiguous", shape, contiguous_us, num_bytes, flops, q_len=1,
                        num_kv_splits=splits, paged_over_contiguous="", host_launch_us=contiguous_host,
                        window=window or ""))  # fmt: skip
        _print_row(rows[-2])
        del q, k_cache, v_cache, block_table, k, v

    for shape in prefill_grid(args.quick):
        if out_of_budget("prefill", shape):
            continue
        num_heads, num_kv_heads = HEAD_CONFIGS[shape["heads"]]
        batch, context, q_len, block_size = (
            shape["batch"],
            shape["context"],
            shape["q_len"],
            shape["block_size"],
        )
        dev = args.device
        q = torch.randn((batch * q_len, num_heads, 128), dtype=dtype, device=dev)
        blocks_per_seq = -(-context // block_size)
        k_cache = torch.randn(
            (batch * blocks_per_seq, block_size, num_kv_heads, 128), dtype=dtype, device=dev
        )
        v_cache = torch.randn_like(k_cache)
        block_table = torch.randperm(batch * blocks_per_seq, generator=gen).to(torch.int32)
        block_table = block_table.view(batch, blocks_per_seq).to(dev)
        cu_q = torch.arange(0, batch + 1, dtype=torch.int32, device=dev) * q_len
        seq_lens = torch.full((batch,), context, dtype=torch.int32, device=dev)
        window = shape.get("window")
        pairs = batch * windowed_pairs(context, q_len, window)  # (query, key) pairs attended
        flops = 4 * pairs * num_heads * 128
        keys_read = min(context, q_len + window - 1) if window else context
        num_bytes = (
            (batch * q_len * num_heads + 2 * batch * keys_read * num_kv_heads) * 128 * q.element_size()
        )
        paged_us, paged_host = time_us(
            partial(
                paged_prefill_attention, q, k_cache, v_cache, block_table, cu_q, seq_lens, max_q_len=q_len,
                window=window,
            )
        )  # fmt: skip
        rows.append(row("prefill", "paged", shape, paged_us, num_bytes, flops, q_len=q_len, num_kv_splits="",
                        host_launch_us=paged_host, window=window or ""))  # fmt: skip
        if q_len == context:  # contiguous varlen has no cached prefix: only whole prompts compare
            k = torch.randn((batch * q_len, num_kv_heads, 128), dtype=dtype, device=dev)
            v = torch.randn_like(k)
            contiguous_us, contiguous_host = time_us(
                partial(contiguous_prefill_attention, q, k, v, cu_q, max_seqlen=q_len, window=window)
            )
            rows[-1]["paged_over_contiguous"] = round(paged_us / contiguous_us, 3)
            rows.append(row("prefill", "contiguous", shape, contiguous_us, num_bytes, flops, q_len=q_len,
                            num_kv_splits="", paged_over_contiguous="", host_launch_us=contiguous_host,
                            window=window or ""))  # fmt: skip
        _print_row(rows[-1])
    return rows


def _wall_s(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _print_row(r: dict) -> None:
    frac = r["frac_hbm_peak"] if r["kind"] == "decode" else r["frac_flops_peak"]
    print(
        f"{r['kind']:7s} {r['layout']:10s} {r['heads']:9s} batch={r['batch']:<4} ctx={r['context']:<6} "
        f"bs={r['block_size']!s:<4} splits={r['num_kv_splits']!s:<3} {r['latency_us']:>10.1f} us "
        f"{r['achieved_gbps']:>8.1f} GB/s {r['achieved_tflops'] or 0:>7.1f} TFLOP/s frac={frac} "
        f"host={r['host_launch_us']}us",
        flush=True,
    )


def summarize(rows: list[dict], on_gpu: bool) -> str:
    """A few lines on the issue's goals: paged decode at the headline shape vs the HBM peak and contiguous."""
    lines = [f"device: {rows[0]['device'] if rows else '?'}"]
    if not on_gpu:
        lines.append("CPU interpreter run: tiny shapes, timings NOT meaningful (correctness smoke test only)")
    head = [
        r for r in rows
        if r["kind"] == "decode" and r["layout"] == "paged" and r["heads"] == HEADLINE["heads"]
        and r["batch"] == HEADLINE["batch"] and r["context"] == HEADLINE["context"] and r["block_size"] == 16
    ]  # fmt: skip
    if head:
        auto = head[0]  # the grid's auto-split row comes first
        best = max(head, key=lambda r: r["achieved_gbps"])
        lines.append(
            f"paged decode, Llama-3-8B, batch 64 x 4096, block 16, auto splits={auto['num_kv_splits']}: "
            f"{auto['latency_us']} us, {auto['achieved_gbps']} GB/s, fraction of HBM peak {auto['frac_hbm_peak']} "
            f"(goal >= 0.70), paged/contiguous {auto['paged_over_contiguous']} (goal <= 1.2)"
        )
        lines.append(
            f"best num_kv_splits at that shape: {best['num_kv_splits']} ({best['achieved_gbps']} GB/s)"
        )
    ratios = [
        r["paged_over_contiguous"] for r in rows if r["kind"] == "decode" and r["paged_over_contiguous"]
    ]
    if ratios:
        lines.append(f"decode paged/contiguous latency ratio: min {min(ratios)}, max {max(ratios)}")
    for layout in ("paged", "contiguous"):
        hosts = sorted(
            r["host_launch_us"]
            for r in rows
            if r["kind"] == "decode" and r["layout"] == layout and r.get("host_launch_us")
        )
        if hosts:
            lines.append(
                f"host launch of one {layout} decode call: median {hosts[len(hosts) // 2]} us "
                f"(min {hosts[0]}, max {hosts[-1]}); latency_us excludes it"
            )
    for r in rows:
        if r["kind"] == "decode" and r["layout"] == "paged" and r.get("window"):
            lines.append(
                f"windowed paged decode (window {r['window']}), batch {r['batch']} x {r['context']}: "
                f"{r['achieved_gbps']} GB/s of the window's KV, fraction of HBM peak {r['frac_hbm_peak']}, "
                f"paged/contiguous {r['paged_over_contiguous']}"
            )
    prefill = [r for r in rows if r["kind"] == "prefill" and r["achieved_tflops"]]
    if prefill:
        best = max(prefill, key=lambda r: r["achieved_tflops"])
        lines.append(
            f"best prefill: {best['layout']} batch {best['batch']} x {best['context']} (q_len {best['q_len']}): "
            f"{best['achieved_tflops']} TFLOP/s, fraction of peak {best['frac_flops_peak']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvsim.kernels.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write (its folder is created)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    parser.add_argument("--peak-gbps", type=float, help="HBM peak, GB/s (default: from the device table)")
    parser.add_argument("--peak-tflops", type=float, help="FP16 tensor peak, TFLOP/s (default: device table)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes only (always on without a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, help="skip the remaining shapes after this many seconds")
    args = parser.parse_args(argv)
    if args.device == "auto":
        import torch  # torch alone does not import triton, so TRITON_INTERPRET can still be set after this

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cpu":
        args.quick = True
        print("No GPU: tiny shapes in Triton's CPU interpreter; the numbers below are NOT meaningful.")
    rows = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows, args.device == "cuda")
    summary_path = args.out.with_name(args.out.stem + "_summary.txt")
    summary_path.write_text(summary + "\n")
    print(f"\nwrote {args.out} ({len(rows)} rows) and {summary_path}\n{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
