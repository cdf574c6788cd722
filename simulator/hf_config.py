"""A ``ModelSpec`` from a Hugging Face ``config.json``: every field is modelled, refused by name, or listed as
ignored in the spec's notes (written to the run's config.json, ``model_spec.notes``).

Families (``model_type``): ``llama``, ``mistral``, ``qwen2`` (SwiGLU MLP, grouped-query attention) and ``opt``
(fc1/fc2 MLP, multi-head attention). Any other ``model_type`` is refused by name.

Fields read (modelled):
- ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``, ``vocab_size``;
  ``num_key_value_heads`` (absent or null: one per attention head; OPT has none);
  ``head_dim`` (absent or null: hidden_size / heads; may differ, as Mistral-Nemo's 128 for 5120 / 32);
  ``intermediate_size`` (OPT: ``ffn_dim``).
- ``max_position_embeddings``, scaled by ``rope_scaling`` (or transformers 5's ``rope_parameters``) as vLLM
  derives the max context (``vllm/config.py`` ``_get_and_verify_max_len``): types ``su``, ``longrope`` and
  ``llama3`` keep it; ``yarn`` gives ``original_max_position_embeddings × factor``; the others
  ``max_position_embeddings × factor``. RoPE scaling changes no memory or cost per token.
- ``dtype`` (transformers ≥ 4.56) or ``torch_dtype`` (older): ``float16``, ``bfloat16`` or ``float32``. kvsim
  simulates vLLM's default ``--dtype auto``, which serves a float32 checkpoint (or one naming no dtype) in
  float16 (``vllm/config.py`` ``_get_and_verify_dtype``: "we use float16 for float32 models"), so weights and
  KV take 2 bytes a value for all three; a float32 checkpoint is said so in the notes. Two keys that disagree,
  or another dtype, are refused.
- ``tie_word_embeddings``: one matrix is both the token embedding and the LM head: its bytes are counted once;
  the LM head GEMM still costs its FLOPs and reads the same bytes. Absent: the family's default (``llama``,
  ``mistral``, ``qwen2``: false, their config classes' default; ``opt``: true, PretrainedConfig's default,
  which OPTConfig keeps).
- ``sliding_window`` with Qwen2's ``use_sliding_window`` (and ``max_window_layers``, which only matters when it
  is on): accepted when off (null, or ``use_sliding_window: false``) or when the window covers the whole
  context; kept in ``ModelSpec.sliding_window`` so that a longer ``--max-model-len`` is refused.
- ``layer_types``: accepted when every layer is ``full_attention``.
- ``word_embed_proj_dim`` (OPT): accepted when equal to ``hidden_size``.
- ``quantization_config``: accepted when null.
- ``_name_or_path``: the default name; ``model_type``: the family.

Refused (they change memory or cost, and kvsim does not model them yet):
- an active ``sliding_window`` shorter than the context (KV of at most the window per request);
- ``quantization_config`` of any method: fp8 stores decoder weights in 1 byte but vLLM runs its GEMMs on fp8
  tensor cores (or dequantizes, on GPUs without them), and kvsim's cost model and measured profiles time 16-bit
  GEMMs only; int4 (AWQ, GPTQ, MXFP4, bitsandbytes) adds group scales and dequantizing kernels likewise;
- mixture of experts (``num_experts``, ``num_local_experts``, ``n_routed_experts``, ``moe_intermediate_size``,
  ``num_experts_per_tok``), multi-head latent attention (``kv_lora_rank``, ``q_lora_rank``), ``layer_types``
  other than full attention, OPT's ``word_embed_proj_dim`` below ``hidden_size`` (project_in/out);
- any other field whose name says it is one of these (``_REFUSED_NAME_PARTS``: expert, moe, lora, window,
  quant, sparse, ...).

Ignored (named in the notes): ``_IGNORED``, which change neither memory nor cost (token ids, norm epsilons,
``rope_theta``, dropouts, the activation function, biases: under 0.1% of the weights); and any other field
kvsim does not recognise, named as such.

Support for mixture of experts, MLA and windowed attention (another issue) replaces a check of ``_REFUSALS`` by
reading the fields into the spec; nothing else here changes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.specs import ModelSpec


@dataclass(frozen=True)
class _Family:
    """How one ``model_type`` names its shapes, and its defaults for fields a config may leave out."""

    intermediate_key: str
    gated_mlp: bool
    grouped_query: bool  # reads num_key_value_heads (else multi-head: one KV head per attention head)
    tie_word_embeddings: bool  # the config class's default when config.json omits the key


_LLAMA_STYLE = _Family("intermediate_size", gated_mlp=True, grouped_query=True, tie_word_embeddings=False)
HF_FAMILIES: dict[str, _Family] = {
    "llama": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "opt": _Family("ffn_dim", gated_mlp=False, grouped_query=False, tie_word_embeddings=True),
}
# dtype as config.json writes it -> bytes a value takes as vLLM serves it with --dtype auto (module docstring)
SERVED_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 2}
# rope_scaling types whose max_position_embeddings is already the scaled context (vLLM's list)
_ROPE_TYPES_ALREADY_SCALED = ("su", "longrope", "llama3")

_IGNORED = frozenset(
    {
        "architectures", "transformers_version", "auto_map", "bos_token_id", "eos_token_id", "pad_token_id",
        "sep_token_id", "decoder_start_token_id", "initializer_range", "init_std", "rms_norm_eps",
        "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "partial_rotary_factor", "hidden_act",
        "activation_function", "attention_dropout", "dropout", "hidden_dropout", "activation_dropout",
        "embd_pdrop", "resid_pdrop", "layerdrop", "use_cache", "pretraining_tp", "attention_bias", "mlp_bias",
        "enable_bias", "do_layer_norm_before", "layer_norm_elementwise_affine", "prefix", "is_decoder",
        "output_attentions", "output_hidden_states", "return_dict", "torchscript", "id2label", "label2id",
        "task_specific_params", "keys_to_ignore_at_inference", "use_return_dict", "_attn_implementation",
        "_attn_implementation_autoset", "bias", "head_dim_original",
    }
)  # fmt: skip
_REFUSED_NAME_PARTS = re.compile(r"expert|moe|lora|window|quant|sparse|ssm|mamba|linear_attn|mla|latent")


def model_from_hf_config(path: Path, name: str | None = None) -> ModelSpec:
    """``ModelSpec.from_hf_config``: ``path`` is config.json or the folder holding it."""
    file = path / "config.json" if path.is_dir() else path
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KvsimError(f"cannot read model config {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KvsimError(f"model config {file} is not UTF-8 text; give a config.json") from None
    except json.JSONDecodeError as exc:
        raise KvsimError(f"model config {file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise KvsimError(f"model config {file}: expected a JSON object")
    return _Reader(file, config).spec(name)


class _Reader:
    """Reads one config.json, remembering which fields it used, so that the rest can be named."""

    def __init__(self, file: Path, config: dict[str, Any]) -> None:
        self.file, self.config = file, config
        self.used: set[str] = set()
        self.notes: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.config.get(key, default)

    def integer(self, key: str, default: int | None = None) -> int:
        """A positive integer field; ``default`` when absent or null (none: the field is required)."""
        value = self.get(key)
        if value is None:
            if default is not None:
                return default
            raise self.error(
                f"missing key {key!r} (model_type {self.config.get('model_type', '?')!r}); is this a "
                "decoder-only model's config.json?"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(f"{key!r} must be a positive integer, got {value!r}")
        return value

    def error(self, message: str) -> KvsimError:
        return KvsimError(f"model config {self.file}: {message}")

    def spec(self, name: str | None) -> ModelSpec:
        model_type = self.get("model_type")
        family = HF_FAMILIES.get(model_type) if isinstance(model_type, str) else None
        if family is None:
            raise self.error(
                f"model_type {model_type!r} is not supported; supported: {', '.join(HF_FAMILIES)} "
                "(other architectures are not modelled yet)"
            )
        for refusal in _REFUSALS:
            refusal(self)
        num_heads = self.integer("num_attention_heads")
        hidden_size = self.integer("hidden_size")
        num_layers = self.integer("num_hidden_layers")
        max_model_len = self._max_model_len()
        window = self._sliding_window(max_model_len)
        tied = self.get("tie_word_embeddings", family.tie_word_embeddings)
        if not isinstance(tied, bool):
            raise self.error(f"'tie_word_embeddings' must be true or false, got {tied!r}")
        given_name = self.get("_name_or_path")
        values = dict(
            name=name
            or (
                given_name if isinstance(given_name, str) and given_name else self.file.resolve().parent.name
            ),
            num_layers=num_layers,
            hidden_size=hidden_size,
            num_heads=num_heads,
            num_kv_heads=self.integer("num_key_value_heads", num_heads)
            if family.grouped_query
            else num_heads,
            head_dim=self.integer("head_dim", hidden_size // num_heads),
            intermediate_size=self.integer(family.intermediate_key),
            vocab_size=self.integer("vocab_size"),
            max_model_len=max_model_len,
            dtype_bytes=self._dtype_bytes(),
            gated_mlp=family.gated_mlp,
            tie_word_embeddings=tied,
            sliding_window=window,
        )
        self._note_the_rest()
        return ModelSpec(**values, notes=(f"shapes from {self.file}", *self.notes))

    def _dtype_bytes(self) -> int:
        given = {key: self.get(key) for key in ("dtype", "torch_dtype") if self.get(key) is not None}
        if len(set(map(str, given.values()))) > 1:
            raise self.error(
                f"'dtype' {given['dtype']!r} and 'torch_dtype' {given['torch_dtype']!r} disagree; keep one"
            )
        key, dtype = next(iter(given.items()), ("torch_dtype", None))
        if dtype is None:
            self.notes.append(
                "no dtype: vLLM reads it as float32 and serves it in float16 (--dtype auto): 2 bytes a value"
            )
            return 2
        if dtype not in SERVED_DTYPE_BYTES:
            raise self.error(
                f"{key!r} {dtype!r} is not modelled; kvsim knows {', '.join(SERVED_DTYPE_BYTES)} "
                "(quantized weights are refused until modelled)"
            )
        if dtype == "float32":
            self.notes.append(
                f"{key} float32: served in float16 as vLLM's --dtype auto does (vllm/config.py "
                "_get_and_verify_dtype): weights and KV at 2 bytes a value"
            )
        return SERVED_DTYPE_BYTES[dtype]

    def _max_model_len(self) -> int:
        context = self.integer("max_position_embeddings")
        scaling = self.get("rope_scaling")
        if scaling is None:
            scaling = self.get("rope_parameters")
        if scaling is None:
            return context
        if not isinstance(scaling, dict) or any(isinstance(v, dict) for v in scaling.values()):
            raise self.error(
                f"rope scaling {scaling!r} is not one table of rope_type and factor (per-layer RoPE is not "
                "modelled yet)"
            )
        rope_type = scaling.get("rope_type", scaling.get("type"))
        if not isinstance(rope_type, str):
            raise self.error(f"rope scaling {scaling!r} names no rope_type (or type)")
        factor = scaling.get("factor", 1.0)
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not math.isfinite(factor):
            raise self.error(f"rope scaling factor must be a number, got {factor!r}")
        if rope_type == "default" or factor == 1:
            return context
        if rope_type in _ROPE_TYPES_ALREADY_SCALED:
            self.notes.append(
                f"rope scaling {rope_type}: max context {context}, max_position_embeddings as is"
            )
            return context
        base = context
        if rope_type == "yarn":
            base = scaling.get("original_max_position_embeddings")
            if not isinstance(base, int) or isinstance(base, bool) or base < 1:
                raise self.error(f"yarn rope scaling needs original_max_position_embeddings, got {base!r}")
        scaled = int(base * factor)
        self.notes.append(
            f"rope scaling {rope_type} x{factor:g}: max context {scaled} tokens ({base} x {factor:g}), as vLLM "
            "derives it (_get_and_verify_max_len)"
        )
        return scaled

    def _sliding_window(self, max_model_len: int) -> int | None:
        window = self.get("sliding_window")
        enabled = self.get("use_sliding_window", True)  # Qwen2's switch; the other families have none
        self.used.add("max_window_layers")  # Qwen2: which layers use the window, when it is on
        if window is None or enabled is False:
            return None
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise self.error(f"'sliding_window' must be a positive integer or null, got {window!r}")
        if window < max_model_len:
            raise self.error(
                f"sliding_window {window} is shorter than the model's context ({max_model_len} tokens): kvsim "
                "does not yet model sliding-window attention (each request keeps KV of at most the window); "
                "a config with sliding_window null (or use_sliding_window false) is modelled"
            )
        self.notes.append(
            f"sliding_window {window} covers the whole context ({max_model_len}): full attention"
        )
        return window

    def _note_the_rest(self) -> None:
        rest = [key for key in self.config if key not in self.used]
        risky = [key for key in rest if _REFUSED_NAME_PARTS.search(key.lower())]
        if risky:
            raise self.error(
                f"{', '.join(repr(k) for k in risky)}: field(s) of an architecture kvsim does not model yet "
                "(mixture of experts, latent attention, windows, quantization); refusing rather than ignoring"
            )
        ignored = [key for key in rest if key in _IGNORED]
        unknown = [key for key in rest if key not in _IGNORED]
        if ignored:
            self.notes.append(f"ignored (no effect on memory or cost): {', '.join(ignored)}")
        if unknown:
            self.notes.append(f"ignored, not recognised: {', '.join(unknown)}")


def _refuse_quantization(reader: _Reader) -> None:
    quant = reader.get("quantization_config")
    if quant is None:
        return
    method = quant.get("quant_method", "?") if isinstance(quant, dict) else quant
    raise reader.error(
        f"quantization_config (quant_method {method!r}) is not modelled yet: quantized weights change both "
        "their bytes and the GEMMs' cost (fp8 or int4 kernels), and kvsim's cost model times 16-bit GEMMs "
        "only; give the unquantized model's config.json"
    )


def _refuse_mixture_of_experts(reader: _Reader) -> None:
    keys = (
        "num_experts",
        "num_local_experts",
        "n_routed_experts",
        "moe_intermediate_size",
        "num_experts_per_tok",
    )
    given = [key for key in keys if reader.get(key) not in (None, 0)]
    if given:
        raise reader.error(f"{', '.join(given)}: mixture-of-experts models are not modelled yet")


def _refuse_latent_attention(reader: _Reader) -> None:
    given = [key for key in ("kv_lora_rank", "q_lora_rank") if reader.get(key) is not None]
    if given:
        raise reader.error(f"{', '.join(given)}: multi-head latent attention (MLA) is not modelled yet")


def _refuse_mixed_layer_types(reader: _Reader) -> None:
    layer_types = reader.get("layer_types")
    if layer_types is None:
        return
    if not isinstance(layer_types, list):
        raise reader.error(f"'layer_types' must be a list, got {layer_types!r}")
    other = sorted({str(t) for t in layer_types if t != "full_attention"})
    if other:
        raise reader.error(
            f"layer_types {', '.join(other)}: only full_attention layers are modelled yet (kvsim does not "
            "yet model sliding-window or other attention types)"
        )


def _refuse_embedding_projection(reader: _Reader) -> None:
    dim = reader.get("word_embed_proj_dim")
    if dim is not None and dim != reader.config.get("hidden_size"):
        raise reader.error(
            f"word_embed_proj_dim {dim!r} differs from hidden_size: OPT's project_in/project_out layers are not "
            "modelled yet"
        )


# Each raises a KvsimError naming what is not modelled; modelling a feature replaces its check.
_REFUSALS: tuple[Callable[[_Reader], None], ...] = (
    _refuse_quantization,
    _refuse_mixture_of_experts,
    _refuse_latent_attention,
    _refuse_mixed_layer_types,
    _refuse_embedding_projection,
)
