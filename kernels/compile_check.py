"""Compile the kernels for a GPU architecture without a GPU, and report what the compiler made of them.

    python -m kvsim.kernels.compile_check [--arch 90] [--quick]

Triton's interpreter accepts code the GPU compiler rejects (DESIGN §8). This compiles exactly the launches
the launchers plan (`plan_launches`, on meta tensors of Llama-3-8B-like shapes) through Triton's full
pipeline down to a cubin, with the argument specialisation the JIT applies at run time (pointers and
integers divisible by 16 marked so: without it the compiler cannot vectorise or pipeline the loads), then
reads the cubin's resource usage with the cuobjdump that ships with Triton. Per launch it prints registers
per thread, spill stack bytes, shared memory, and the number of asynchronous (pipelined) copies.

This is static evidence only: it says a kernel compiles, whether it spills, and whether its loads are
software-pipelined, not how fast it runs. Must run without TRITON_INTERPRET (the kernels must be decorated
as compilable functions).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import torch

_TRITON_TYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.int32: "*i32"}


@dataclass(frozen=True)
class CompileReport:
    name: str
    registers: int
    stack_bytes: int
    shared_bytes: int
    async_copies: int

    def line(self) -> str:
        return (
            f"{self.name:60s} regs={self.registers:<4} stack={self.stack_bytes:<5} "
            f"smem={self.shared_bytes:<6} async_copies={self.async_copies}"
        )


def compile_launch(launch, arch: int, name: str) -> CompileReport:
    """Compile one KernelLaunch for sm_<arch> with the JIT's specialisation of its arguments."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    meta = dict(launch.meta)
    options = {key: meta.pop(key) for key in ("num_warps", "num_stages") if key in meta}
    names = launch.kernel.arg_names
    signature, attrs = {}, {}
    for index, value in enumerate(launch.args):
        arg = names[index]
        if isinstance(value, torch.Tensor):
            signature[arg] = _TRITON_TYPES[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]  # torch allocations are 256-byte aligned
        elif isinstance(value, float):
            signature[arg] = "fp32"
        else:
            signature[arg] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    signature.update({arg: "constexpr" for arg in meta})
    source = ASTSource(launch.kernel, signature, meta, attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    registers, stack = _resource_usage(compiled.asm["cubin"])
    async_copies = len(re.findall(r"async_copy_global_to_local", compiled.asm["ttgir"]))
    return CompileReport(name, registers, stack, compiled.metadata.shared, async_copies)


def _resource_usage(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, stack bytes) from `cuobjdump --dump-resource-usage`."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", text)
    assert found, f"cuobjdump printed no resource usage: {text[:200]}"
    return int(found.group(1)), int(found.group(2))


def planned_launches(quick: bool) -> list[tuple[str, object]]:
    """(name, KernelLaunch) for every kernel configuration the launchers can pick, at serving shapes."""
    from kvsim.kernels import decode, prefill

    meta = dict(device="meta")
    batch, context, block_size, num_heads, num_kv_heads = 64, 4096, 16, 32, 8
    head_dims = (128,) if quick else (64, 128, 256)
    dtypes = (torch.float16,) if quick else (torch.float16, torch.bfloat16, torch.float32)
    out = []
    for dtype in dtypes:
        for head_dim in head_dims:
            tag = f"{str(dtype).split('.')[-1]} d{head_dim}"
            q = torch.empty((batch, num_heads, head_dim), dtype=dtype, **meta)
            seq_lens = torch.empty((batch,), dtype=torch.int32, **meta)
            cache = torch.empty(
                (batch * context // block_size, block_size, num_kv_heads, head_dim), dtype=dtype, **meta
            )
            block_table = torch.empty((batch, context // block_size), dtype=torch.int32, **meta)
            kv = torch.empty((batch, context, num_kv_heads, head_dim), dtype=dtype, **meta)
            for splits in (1, 2):
                _, paged = decode.plan_launches(
                    q, (cache, cache), block_table, seq_lens, decode.paged_kv_strides(cache, cache), block_size,
                    True, 0.1, splits, context,
                )  # fmt: skip
                _, contiguous = decode.plan_launches(
                    q, (kv, kv), seq_lens, seq_lens, decode.contiguous_kv_strides(kv, kv), 1, False, 0.1,
                    splits, context,
                )  # fmt: skip
                out += [
                    (f"decode paged {tag} splits={splits} {launch.kernel.__name__}", launch)
                    for launch in paged
                ]
                out += [(f"decode contiguous {tag} splits={splits}", contiguous[0])]
            if not quick and dtype == torch.float16 and head_dim == 128:  # GQA packing's extremes: MHA, MQA
                for heads, kv_heads in ((32, 32), (32, 1)):
                    q_g = torch.empty((batch, heads, head_dim), dtype=dtype, **meta)
                    cache_g = torch.empty((*cache.shape[:2], kv_heads, head_dim), dtype=dtype, **meta)
                    _, paged = decode.plan_launches(
                        q_g, (cache_g, cache_g), block_table, seq_lens, decode.paged_kv_strides(cache_g, cache_g),
                        block_size, True, 0.1, 2, context,
                    )  # fmt: skip
                    out.append((f"decode paged {tag} group={heads // kv_heads}", paged[0]))
            total = batch * 512
            q_tokens = torch.empty((total, num_heads, head_dim), dtype=dtype, **meta)
            cu = torch.empty((batch + 1,), dtype=torch.int32, **meta)
            strides = [(cache.stride(0), cache.stride(1), cache.stride(2))] * 2
            _, paged = prefill.plan_launches(
                q_tokens, (cache, cache), block_table, cu, seq_lens, strides, block_size, True, 0.1, 512
            )
            kv_tokens = torch.empty((total, num_kv_heads, head_dim), dtype=dtype, **meta)
            strides = [(0, kv_tokens.stride(0), kv_tokens.stride(1))] * 2
            _, contiguous = prefill.plan_launches(
                q_tokens, (kv_tokens, kv_tokens), cu, cu, cu, strides, 1, False, 0.1, 512
            )
            out += [(f"prefill paged {tag}", paged[0]), (f"prefill contiguous {tag}", contiguous[0])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvsim.kernels.compile_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100/H200)")
    parser.add_argument("--quick", action="store_true", help="fp16 at head_dim 128 only")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print(
            "compile_check needs TRITON_INTERPRET unset (kernels must be compilable functions)",
            file=sys.stderr,
        )
        return 2
    failures = 0
    for name, launch in planned_launches(args.quick):
        try:
            print(compile_launch(launch, args.arch, name).line(), flush=True)
        except Exception as e:  # report every failing configuration, not only the first
            failures += 1
            print(f"{name:60s} FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
    print(f"sm_{args.arch}: {failures} of the planned launches failed to compile")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
