"""Model and GPU specifications: frozen dataclasses with presets by name (STYLE 3, gpt-fast's from_name).

A model may also come from a Hugging Face ``config.json`` (``simulator/hf_config.py``: which of its fields are
modelled, refused or ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kvsim.errors import KvsimError
from kvsim.simulator.model_presets import PRESETS
from kvsim.simulator.weights import model_num_params, weight_bytes_per_gpu

__all__ = [
    "GPUS",
    "MODELS",
    "GpuSpec",
    "ModelSpec",
    "kv_capacity_bytes",
    "model_num_params",
    "weight_bytes_per_gpu",
]


# Attention types of a layer, in Hugging Face's ``layer_types`` words.
FULL_ATTENTION, SLIDING_ATTENTION = "full_attention", "sliding_attention"
LAYER_TYPES = (FULL_ATTENTION, SLIDING_ATTENTION)


@dataclass(frozen=True)
class ModelSpec:
    """Decoder-only transformer shapes. Per-GPU numbers divide heads and intermediate sizes by the TP degree.

    Attention: every layer is ``full_attention`` or ``sliding_attention`` (``layer_types``; left empty: every
    layer full, or every layer windowed when ``sliding_window`` is set, as Mistral-7B-v0.1). A windowed layer
    attends to, and keeps KV of, the last ``sliding_window`` tokens. With ``kv_lora_rank`` the attention is
    DeepSeek's multi-head latent attention (MLA): one latent of ``kv_lora_rank + qk_rope_head_dim`` values is
    cached per token and layer, no separate K and V. Mixture of experts (``num_experts`` > 0): every layer after
    the first ``num_dense_layers`` routes each token to ``num_experts_per_tok`` of ``num_experts`` experts of
    ``moe_intermediate_size``, plus shared experts of ``shared_expert_intermediate_size`` in all (0: none); all
    experts' weights are resident. Weights: ``dtype_bytes`` a value unless quantized
    (``linear_bytes_per_param`` for the decoder's attention and dense-MLP linears, ``expert_bytes_per_param`` for
    the experts; embedding, LM head and router stay at ``dtype_bytes``). KV cache: ``kv_cache_dtype_bytes`` a
    value (None: ``dtype_bytes``, vLLM's ``--kv-cache-dtype auto``)."""

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
    # the window of the sliding_attention layers in tokens; None: no windowed layer
    sliding_window: int | None = None
    layer_types: tuple[str, ...] = ()  # per layer, LAYER_TYPES; () resolves as the class docstring says
    # multi-head latent attention (DeepSeek-V2/V3); 0: none
    kv_lora_rank: int = 0
    q_lora_rank: int = 0  # 0: queries projected from the hidden state directly (DeepSeek-V2-Lite)
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # mixture of experts; 0 experts: a dense MLP of intermediate_size in every layer
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # all shared experts together (DeepSeek: n_shared × moe size)
    num_dense_layers: int = 0  # leading layers with a dense MLP (DeepSeek's first_k_dense_replace)
    # quantized weights: bytes per parameter with their scales (model_memory.py states each formula)
    linear_bytes_per_param: float | None = None
    expert_bytes_per_param: float | None = None
    quantization: str = field(
        default="", compare=False
    )  # what the weights are, for outputs: e.g. "fp8 block 128x128", "mxfp4 (experts)"
    kv_cache_dtype_bytes: int | None = None
    # resident weights outside the decoder (a multimodal model's vision tower), in parameters
    extra_params: int = 0
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
        if self.num_heads % self.num_kv_heads:
            raise KvsimError(
                f"model {self.name!r}: num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.sliding_window is not None and self.sliding_window < 1:
            raise KvsimError(
                f"model {self.name!r}: sliding_window must be positive, got {self.sliding_window}"
            )
        layer_types = tuple(self.layer_types)
        if not layer_types:
            kind = SLIDING_ATTENTION if self.sliding_window is not None else FULL_ATTENTION
            layer_types = (kind,) * self.num_layers
        object.__setattr__(self, "layer_types", layer_types)
        if len(layer_types) != self.num_layers or not set(layer_types) <= set(LAYER_TYPES):
            raise KvsimError(
                f"model {self.name!r}: layer_types must list {self.num_layers} layers, each one of "
                f"{', '.join(LAYER_TYPES)}; got {len(layer_types)}: {sorted(set(layer_types))}"
            )
        if SLIDING_ATTENTION in layer_types and self.sliding_window is None:
            raise KvsimError(f"model {self.name!r}: sliding_attention layers need a sliding_window")
        if self.kv_lora_rank and not (self.qk_rope_head_dim and self.qk_nope_head_dim and self.v_head_dim):
            raise KvsimError(
                f"model {self.name!r}: multi-head latent attention (kv_lora_rank {self.kv_lora_rank}) needs "
                "qk_rope_head_dim, qk_nope_head_dim and v_head_dim"
            )
        if self.kv_lora_rank and SLIDING_ATTENTION in layer_types:
            raise KvsimError(f"model {self.name!r}: windowed latent attention is not modelled")
        if self.num_experts:
            if not 0 < self.num_experts_per_tok <= self.num_experts or self.moe_intermediate_size <= 0:
                raise KvsimError(
                    f"model {self.name!r}: {self.num_experts} experts need 0 < num_experts_per_tok <= "
                    f"num_experts (got {self.num_experts_per_tok}) and a positive moe_intermediate_size (got "
                    f"{self.moe_intermediate_size})"
                )
            if not 0 <= self.num_dense_layers < self.num_layers:
                raise KvsimError(
                    f"model {self.name!r}: num_dense_layers must be in [0, num_layers), got {self.num_dense_layers}"
                )
        for name in ("linear_bytes_per_param", "expert_bytes_per_param"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 4:
                raise KvsimError(f"model {self.name!r}: {name} must be in (0, 4] bytes, got {value}")
        if self.kv_cache_dtype_bytes is not None and self.kv_cache_dtype_bytes not in (1, 2):
            raise KvsimError(
                f"model {self.name!r}: kv_cache_dtype_bytes must be 1 (fp8) or 2, got {self.kv_cache_dtype_bytes}"
            )

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def num_sliding_layers(self) -> int:
        """Layers that keep at most the window (a window covering max_model_len keeps everything anyway)."""
        return self.layer_types.count(SLIDING_ATTENTION)

    @property
    def has_window(self) -> bool:
        """Some layer's window is shorter than the context: its KV stops growing once past the window."""
        return self.num_sliding_layers > 0 and self.sliding_window < self.max_model_len

    @property
    def kv_value_bytes(self) -> int:
        """Bytes of one cached value (vLLM's --kv-cache-dtype: auto is the model's dtype, fp8 one byte)."""
        return self.kv_cache_dtype_bytes or self.dtype_bytes

    def kv_bytes_per_token_layer(self, tp: int = 1) -> int:
        """Bytes one token keeps in one attention layer on one GPU of a TP group (DESIGN §3): K and V of this
        GPU's KV heads (split across the group; with fewer KV heads than GPUs each keeps one, replicated), or
        MLA's latent ``kv_lora_rank + qk_rope_head_dim`` values, whole on every GPU (vLLM's MLA backends
        replicate the latent: its cache spec has one head, not split by TP)."""
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.kv_value_bytes
        return 2 * max(1, self.num_kv_heads // tp) * self.head_dim * self.kv_value_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes one token keeps in all layers on one GPU of a TP group, while every layer holds it: the whole
        of a full-attention model's KV per token; for a model with windowed layers, what a token inside every
        window takes (the paged allocator counts the windowed layers' blocks apart: allocators/kv_groups.py)."""
        return self.num_layers * self.kv_bytes_per_token_layer(tp)

    def check_tp(self, tp: int) -> None:
        """Raise KvsimError unless ``tp`` splits the attention heads and the MLP evenly (Megatron-style TP)."""
        if tp < 1:
            raise KvsimError(f"tp must be at least 1, got {tp}")
        names = ["num_heads", "intermediate_size"]
        names += ["moe_intermediate_size", "shared_expert_intermediate_size"] if self.is_moe else []
        for name in names:
            if getattr(self, name) % tp:
                raise KvsimError(
                    f"model {self.name!r}: {name} ({getattr(self, name)}) is not divisible by "
                    f"tp={tp}; pick a tp that divides it"
                )
        if not self.is_mla and self.num_kv_heads % tp and tp % self.num_kv_heads:
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
        """Shapes from a Hugging Face ``config.json`` (``simulator/hf_config.py`` lists the families, and the
        fields read, refused and ignored).

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
    # mistralai/Mistral-7B-Instruct-v0.2: v0.1's shapes without its 4,096-token sliding window (v0.1 with the
    # window: mistral-7b-v0.1, model_presets.py)
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
MODELS.update({key: ModelSpec(**fields) for key, fields in PRESETS.items()})  # model_presets.py

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
