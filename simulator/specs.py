"""Model and GPU specifications: frozen dataclasses with presets by name (STYLE 3, gpt-fast's from_name)."""

from __future__ import annotations

from dataclasses import dataclass

from kvsim.errors import KvsimError


@dataclass(frozen=True)
class ModelSpec:
    """Decoder-only transformer shapes. Per-GPU numbers divide heads and intermediate size by the TP degree."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_model_len: int  # max context (prompt + output) tokens
    dtype_bytes: int = 2
    gated_mlp: bool = True  # SwiGLU (gate, up, down) as Llama; False for OPT's fc1/fc2

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                     "vocab_size", "max_model_len", "dtype_bytes"):
            if getattr(self, name) <= 0:
                raise KvsimError(f"model {self.name!r}: {name} must be positive, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise KvsimError(f"model {self.name!r}: num_heads ({self.num_heads}) must be a multiple of "
                             f"num_kv_heads ({self.num_kv_heads})")

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes of K and V for one token, all layers, on one GPU of a TP group (DESIGN §3). KV heads are
        split across the group; with fewer KV heads than GPUs each GPU keeps one (replicated)."""
        kv_heads_per_gpu = max(1, self.num_kv_heads // tp)
        return 2 * self.num_layers * kv_heads_per_gpu * self.head_dim * self.dtype_bytes


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet figures of one GPU. Every preset cites its datasheet."""

    name: str
    memory_bytes: int
    hbm_bw_bytes_per_s: float
    dense_fp16_flops_per_s: float  # dense (no sparsity) fp16/bf16 tensor-core peak
    num_sms: int
    interconnect_bw_bytes_per_s: float  # per-GPU NVLink (or PCIe) bandwidth, one direction
    citation: str = ""
