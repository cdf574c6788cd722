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


def model_num_params(model: ModelSpec) -> int:
    """Parameters of the decoder stack plus embedding and LM head (untied), ignoring norms and biases."""
    attn = model.hidden_size * (model.num_heads + 2 * model.num_kv_heads) * model.head_dim
    attn += model.num_heads * model.head_dim * model.hidden_size
    mlp = (3 if model.gated_mlp else 2) * model.hidden_size * model.intermediate_size
    return model.num_layers * (attn + mlp) + 2 * model.vocab_size * model.hidden_size


def weight_bytes_per_gpu(model: ModelSpec, tp: int = 1) -> int:
    return model_num_params(model) * model.dtype_bytes // tp


def kv_capacity_bytes(
    model: ModelSpec,
    gpu: GpuSpec,
    tp: int = 1,
    gpu_memory_utilization: float = 0.9,
    activation_reserve_bytes: int = 0,
) -> int:
    """KV memory of one GPU (DESIGN §3): memory × utilization − weights − activation reserve.

    Raises KvsimError, saying by how much, when the model does not fit."""
    capacity = int(gpu.memory_bytes * gpu_memory_utilization) - weight_bytes_per_gpu(model, tp)
    capacity -= activation_reserve_bytes
    if capacity <= 0:
        gib = 2**30
        raise KvsimError(
            f"{model.name} does not fit on {gpu.name} with tp={tp}: weights "
            f"{weight_bytes_per_gpu(model, tp) / gib:.1f} GiB + activation reserve "
            f"{activation_reserve_bytes / gib:.1f} GiB exceed {gpu_memory_utilization:.0%} of "
            f"{gpu.memory_bytes / gib:.0f} GiB by {-capacity / gib:.1f} GiB; raise --tp, pick a larger GPU, "
            f"or raise --gpu-memory-utilization")
    return capacity
