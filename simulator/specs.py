"""Model and GPU specifications: frozen dataclasses with presets by name (STYLE 3, gpt-fast's from_name).

A model may also come from a Hugging Face ``config.json`` (``simulator/hf_config.py``: which of its fields are
modelled, refused or ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kvsim.errors import KvsimError


@dataclass(frozen=True)
class ModelSpec:
    """Decoder-only transformer shapes. Per-GPU numbers divide heads and intermediate size by the TP degree.

    Invariant: every layer is full attention over the whole context (a ``sliding_window`` below
    ``max_model_len`` is refused: kvsim does not yet model windowed KV)."""

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
    # one matrix serves the token embedding and the LM head: its bytes are counted once (its GEMM still runs)
    tie_word_embeddings: bool = False
    # the model's attention window in tokens; None: none. Allowed only where it covers max_model_len
    sliding_window: int | None = None
    # where the shapes came from and what was left out (config.json fields ignored, precision served): written
    # to config.json with the spec; not part of the model's identity
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in (
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "max_model_len",
            "dtype_bytes",
        ):
            if getattr(self, name) <= 0:
                raise KvsimError(f"model {self.name!r}: {name} must be positive, got {getattr(self, name)}")
        if self.sliding_window is not None and self.sliding_window < self.max_model_len:
            raise KvsimError(
                f"model {self.name!r}: sliding_window {self.sliding_window} is shorter than max_model_len "
                f"{self.max_model_len}: kvsim does not yet model sliding-window attention (KV of at most "
                f"{self.sliding_window} tokens per request); lower --max-model-len to {self.sliding_window} or less "
                "to simulate full attention within the window"
            )
        if self.num_heads % self.num_kv_heads:
            raise KvsimError(
                f"model {self.name!r}: num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes of K and V for one token, all layers, on one GPU of a TP group (DESIGN §3). KV heads are
        split across the group; with fewer KV heads than GPUs each GPU keeps one (replicated)."""
        kv_heads_per_gpu = max(1, self.num_kv_heads // tp)
        return 2 * self.num_layers * kv_heads_per_gpu * self.head_dim * self.dtype_bytes

    def check_tp(self, tp: int) -> None:
        """Raise KvsimError unless ``tp`` splits the attention heads and the MLP evenly (Megatron-style TP)."""
        if tp < 1:
            raise KvsimError(f"tp must be at least 1, got {tp}")
        for name in ("num_heads", "intermediate_size"):
            if getattr(self, name) % tp:
                raise KvsimError(
                    f"model {self.name!r}: {name} ({getattr(self, name)}) is not divisible by "
                    f"tp={tp}; pick a tp that divides it"
                )
        if self.num_kv_heads % tp and tp % self.num_kv_heads:
            raise KvsimError(
                f"model {self.name!r}: num_kv_heads ({self.num_kv_heads}) and tp={tp} must divide "
                f"one another (KV heads are split, or replicated when fewer than GPUs)"
            )

    @classmethod
    def from_name(cls, name: str) -> ModelSpec:
        """A preset by name, case-insensitive (``MODELS``), or the path of a Hugging Face ``config.json`` (or
        of the folder holding one): ``--model path/to/config.json`` on the command line."""
        spec = MODELS.get(name.lower())
        if spec is not None:
            return spec
        path = Path(name)
        if path.suffix.lower() == ".json" or path.is_dir():
            if path.is_file() or (path / "config.json").is_file():
                return cls.from_hf_config(path)
            raise KvsimError(f"model {name!r}: no such file (nor a config.json in such a folder)")
        raise KvsimError(
            f"unknown model {name!r}; presets: {', '.join(MODELS)}, or the path of a Hugging Face config.json"
        )

    @classmethod
    def from_hf_config(cls, path: str | Path, name: str | None = None) -> ModelSpec:
        """Shapes from a Hugging Face ``config.json`` (Llama, Mistral, Qwen2 and OPT families;
        ``simulator/hf_config.py`` lists the fields read, refused and ignored).

        ``path`` is the file or the folder holding it; ``name`` defaults to the config's ``_name_or_path``,
        else the folder name."""
        from kvsim.simulator.hf_config import model_from_hf_config

        return model_from_hf_config(Path(path), name)


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
    interconnect: str = ""  # e.g. "NVLink 3 (12 links)", "PCIe 4.0 x16"

    def __post_init__(self) -> None:
        for name in (
            "memory_bytes",
            "hbm_bw_bytes_per_s",
            "dense_fp16_flops_per_s",
            "num_sms",
            "interconnect_bw_bytes_per_s",
        ):
            if not getattr(self, name) > 0:
                raise KvsimError(f"gpu {self.name!r}: {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_name(cls, name: str) -> GpuSpec:
        """A preset by name, case-insensitive (``GPUS``)."""
        spec = GPUS.get(name.lower())
        if spec is None:
            raise KvsimError(f"unknown GPU {name!r}; presets: {', '.join(GPUS)}")
        return spec


def model_num_params(model: ModelSpec) -> int:
    """Parameters of the decoder stack plus the embedding and the LM head (one matrix when tied), ignoring
    norms, biases and OPT's learned position embeddings (each under 0.2% of the weights)."""
    attn = model.hidden_size * (model.num_heads + 2 * model.num_kv_heads) * model.head_dim
    attn += model.num_heads * model.head_dim * model.hidden_size
    mlp = (3 if model.gated_mlp else 2) * model.hidden_size * model.intermediate_size
    num_embedding_matrices = 1 if model.tie_word_embeddings else 2
    return model.num_layers * (attn + mlp) + num_embedding_matrices * model.vocab_size * model.hidden_size


def weight_bytes_per_gpu(model: ModelSpec, tp: int = 1) -> int:
    return model_num_params(model) * model.dtype_bytes // tp


def max_kv_capacity_bytes(model: ModelSpec, gpu: GpuSpec, tp: int = 1) -> int:
    """The most KV memory one GPU can hold: all of its memory less the model's weights on it (a
    ``kv_capacity_bytes`` override above this describes a GPU that does not exist)."""
    return gpu.memory_bytes - weight_bytes_per_gpu(model, tp)


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
            f"or raise --gpu-memory-utilization"
        )
    return capacity


# Presets: shapes from each model's published config.json on the Hugging Face Hub (repo named beside it);
# OPT-175B, whose weights are not on the Hub, from the OPT paper (Zhang et al. 2022, arXiv:2205.01068, Table 1).
# OPT ties its LM head to the token embedding (its config.json leaves tie_word_embeddings at PretrainedConfig's
# true; vLLM's OPTForCausalLM shares the matrix); the others keep two matrices (tie_word_embeddings false).
# name: (layers, hidden, heads, kv heads, intermediate, vocab, max context, gated MLP)
_MODEL_SHAPES = {
    "opt-13b": (40, 5120, 40, 40, 20480, 50272, 2048, False),  # facebook/opt-13b
    "opt-66b": (64, 9216, 72, 72, 36864, 50272, 2048, False),  # facebook/opt-66b
    "opt-175b": (96, 12288, 96, 96, 49152, 50272, 2048, False),  # OPT paper Table 1
    "llama-2-7b": (32, 4096, 32, 32, 11008, 32000, 4096, True),  # meta-llama/Llama-2-7b-hf
    "llama-2-13b": (40, 5120, 40, 40, 13824, 32000, 4096, True),  # meta-llama/Llama-2-13b-hf
    "llama-2-70b": (80, 8192, 64, 8, 28672, 32000, 4096, True),  # meta-llama/Llama-2-70b-hf
    "codellama-34b": (48, 8192, 64, 8, 22016, 32000, 16384, True),  # codellama/CodeLlama-34b-hf
    "llama-3-8b": (32, 4096, 32, 8, 14336, 128256, 8192, True),  # meta-llama/Meta-Llama-3-8B
    "llama-3-70b": (80, 8192, 64, 8, 28672, 128256, 8192, True),  # meta-llama/Meta-Llama-3-70B
    "llama-3.1-8b": (32, 4096, 32, 8, 14336, 128256, 131072, True),  # meta-llama/Llama-3.1-8B
    # mistralai/Mistral-7B-Instruct-v0.2: v0.1's shapes without its 4,096-token sliding window (v0.1 itself is
    # refused: kvsim does not yet model sliding-window attention)
    "mistral-7b": (32, 4096, 32, 8, 14336, 32000, 32768, True),
    "qwen2.5-7b": (28, 3584, 28, 4, 18944, 152064, 131072, True),  # Qwen/Qwen2.5-7B
    "qwen2.5-72b": (80, 8192, 64, 8, 29568, 152064, 131072, True),  # Qwen/Qwen2.5-72B
}
_DISPLAY_NAMES = {
    "opt-13b": "OPT-13B",
    "opt-66b": "OPT-66B",
    "opt-175b": "OPT-175B",
    "llama-2-7b": "Llama-2-7B",
    "llama-2-13b": "Llama-2-13B",
    "llama-2-70b": "Llama-2-70B",
    "codellama-34b": "CodeLlama-34B",
    "llama-3-8b": "Llama-3-8B",
    "llama-3-70b": "Llama-3-70B",
    "llama-3.1-8b": "Llama-3.1-8B",
    "mistral-7b": "Mistral-7B",
    "qwen2.5-7b": "Qwen2.5-7B",
    "qwen2.5-72b": "Qwen2.5-72B",
}
_TIED_PRESETS = ("opt-13b", "opt-66b", "opt-175b")
MODELS: dict[str, ModelSpec] = {
    key: ModelSpec(
        name=_DISPLAY_NAMES[key],
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=inter,
        vocab_size=vocab,
        max_model_len=max_len,
        gated_mlp=gated,
        tie_word_embeddings=key in _TIED_PRESETS,
    )
    for key, (layers, hidden, heads, kv_heads, inter, vocab, max_len, gated) in _MODEL_SHAPES.items()
}

_GIB = 2**30
_GB = 10**9
_TB = 10**12
# Datasheet figures (SXM parts). Memory: the datasheet's "40GB"/"80GB" read as GiB for A100 and H100 (A100's
# driver reports 40960 / 81920 MiB), decimal GB for H200 (141 GB) and L4 (24 GB); FLOP/s are dense fp16/bf16
# tensor-core peaks, without the 2:4 sparsity doubling; interconnect is NVLink per GPU per direction (half the
# datasheet's bidirectional total), or PCIe for L4.
GPUS: dict[str, GpuSpec] = {
    "a100-40gb": GpuSpec(
        "A100-40GB",
        40 * _GIB,
        1555 * _GB,
        312 * _TB,
        108,
        300 * _GB,
        "NVIDIA A100 Tensor Core GPU datasheet (2021): 40GB HBM2 1,555 GB/s, FP16 312 TFLOPS, NVLink 600 GB/s; "
        "108 SMs per the NVIDIA A100 architecture whitepaper",
        "NVLink 3 (12 links)",
    ),
    "a100-80gb": GpuSpec(
        "A100-80GB",
        80 * _GIB,
        2039 * _GB,
        312 * _TB,
        108,
        300 * _GB,
        "NVIDIA A100 Tensor Core GPU datasheet (2021): 80GB HBM2e 2,039 GB/s (SXM), FP16 312 TFLOPS, "
        "NVLink 600 GB/s; 108 SMs",
        "NVLink 3 (12 links)",
    ),
    "h100-sxm": GpuSpec(
        "H100-SXM",
        80 * _GIB,
        3350 * _GB,
        989 * _TB,
        132,
        450 * _GB,
        "NVIDIA H100 Tensor Core GPU datasheet: SXM 80GB HBM3 3.35 TB/s, FP16/BF16 1,979 TFLOPS with sparsity "
        "(989 dense), NVLink 900 GB/s; 132 SMs per the NVIDIA H100 (Hopper) architecture whitepaper",
        "NVLink 4 (18 links)",
    ),
    "h200": GpuSpec(
        "H200",
        141 * _GB,
        4800 * _GB,
        989 * _TB,
        132,
        450 * _GB,
        "NVIDIA H200 Tensor Core GPU datasheet: SXM 141GB HBM3e 4.8 TB/s, FP16/BF16 1,979 TFLOPS with "
        "sparsity (989 dense), NVLink 900 GB/s; 132 SMs (same GH100 configuration as H100 SXM)",
        "NVLink 4 (18 links)",
    ),
    "l4": GpuSpec(
        "L4",
        24 * _GB,
        300 * _GB,
        121 * _TB,
        58,
        32 * _GB,
        "NVIDIA L4 Tensor Core GPU datasheet: 24GB GDDR6 300 GB/s, FP16 242 TFLOPS with sparsity (121 dense), "
        "PCIe Gen4 x16 64 GB/s bidirectional; 58 SMs per the NVIDIA Ada Lovelace architecture whitepaper",
        "PCIe 4.0 x16",
    ),
}
