"""A ``ModelSpec`` from a Hugging Face ``config.json``: every field is modelled, refused by name, or listed as
ignored in the spec's notes (written to the run's config.json, ``model_spec.notes``).

Families (``model_type``, ``HF_FAMILIES``): one reader for the Llama-like decoders (SwiGLU MLP, grouped-query
attention): ``llama``, ``mistral``, ``granite``, ``olmo2``, ``phi3``, ``qwen2``, ``qwen3``, ``gemma2``,
``gemma3_text`` and ``gemma3`` (its ``text_config``, plus the vision tower's weights); each type's differences
are its ``_Family`` (tied embeddings by default for Gemma, which layers take the window); the MoE types
``mixtral``, ``qwen2_moe``, ``qwen3_moe``, ``deepseek_v2``, ``deepseek_v3`` (with MLA) and ``gpt_oss``
(``hf_config_arch.py`` reads experts, latent attention and ``quantization_config``); and ``opt`` (fc1/fc2 MLP,
multi-head attention). Any other ``model_type`` is refused by name.

Fields read (modelled):
- ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``, ``vocab_size``;
  ``num_key_value_heads`` (absent or null: one per attention head; OPT has none);
  ``head_dim`` (absent or null: hidden_size / heads; may differ, as Mistral-Nemo's 128 for 5120 / 32);
  ``intermediate_size`` (OPT: ``ffn_dim``).
- ``max_position_embeddings``, scaled by ``rope_scaling`` (or transformers 5's ``rope_parameters``) as vLLM
  derives the max context (``vllm/config.py`` ``_get_and_verify_max_len``): types ``su``, ``longrope`` and
  ``llama3``, ``yarn``, ``deepseek_yarn`` keep it (vLLM 0.34: "YaRN variants leave max_position_embeddings
  already scaled"), and so does any scaling of Gemma 3 (its 128K is already scaled); the others
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
- ``sliding_window`` and ``layer_types`` (``full_attention`` or ``sliding_attention`` per layer; any other type
  refused). Without ``layer_types`` the family says which layers take the window: every layer (Mistral v0.1,
  Phi-3), the even ones (Gemma 2), all but every ``sliding_window_pattern``-th (Gemma 3, default 6). Qwen2/3's
  ``use_sliding_window`` false (or a null window) is full attention; true with a window below the context is
  refused (which layers take it, ``max_window_layers``, is read differently by transformers and vLLM).
- ``word_embed_proj_dim`` (OPT): accepted when equal to ``hidden_size``.
- ``quantization_config``, experts and latent attention: ``hf_config_arch.py``.
- ``_name_or_path``: the default name; ``model_type``: the family.

Refused (they change memory or cost, and kvsim does not model them yet): what ``hf_config_arch.py`` refuses;
OPT's ``word_embed_proj_dim`` below ``hidden_size`` (project_in/out); and any field not read by the family
whose name says it is an architecture feature (``_REFUSED_NAME_PARTS``: expert, moe, lora, window, quant,
sparse, ...): a llama config.json with ``num_local_experts`` is refused, not read as dense.

Ignored (named in the notes): ``_IGNORED``, which change neither memory nor cost (token ids, norm epsilons,
``rope_theta``, dropouts, the activation function, biases: under 0.1% of the weights); and any other field
kvsim does not recognise, named as such.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError
from kvsim.simulator.hf_config_arch import read_experts, read_latent_attention, read_quantization
from kvsim.simulator.specs import FULL_ATTENTION, LAYER_TYPES, SLIDING_ATTENTION, ModelSpec


@dataclass(frozen=True)
class _Family:
    """How one ``model_type`` names its shapes, and its defaults for fields a config may leave out."""

    intermediate_key: str
    gated_mlp: bool
    grouped_query: bool  # reads num_key_value_heads (else multi-head: one KV head per attention head)
    tie_word_embeddings: bool  # the config class's default when config.json omits the key
    # which layers take sliding_window when config.json has no layer_types: "all" (Mistral v0.1, Phi-3), "even"
    # (Gemma 2: layers 0, 2, ...), "pattern" (Gemma 3: every sliding_window_pattern-th layer is global),
    # "qwen" (only with use_sliding_window, refused below the context: see _sliding_window)
    window_layers: str = "all"
    moe: str | None = None  # how the experts' fields are named: "mixtral", "qwen_moe", "deepseek", "gpt_oss"
    mla: bool = False  # DeepSeek's multi-head latent attention


_LLAMA_STYLE = _Family("intermediate_size", gated_mlp=True, grouped_query=True, tie_word_embeddings=False)
_QWEN_STYLE = dataclasses.replace(_LLAMA_STYLE, window_layers="qwen")
_GEMMA_STYLE = dataclasses.replace(_LLAMA_STYLE, tie_word_embeddings=True)
HF_FAMILIES: dict[str, _Family] = {
    "llama": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    "granite": _LLAMA_STYLE,  # its embedding/residual/attention multipliers and logits scaling cost nothing
    "olmo2": _LLAMA_STYLE,  # QK norms: elementwise, under 0.1% of a layer's work
    "phi3": _LLAMA_STYLE,  # fused qkv_proj and gate_up_proj: the same shapes
    "qwen2": _QWEN_STYLE,
    "qwen3": _QWEN_STYLE,  # head_dim given (128), QK norms
    "gemma2": dataclasses.replace(_GEMMA_STYLE, window_layers="even"),
    "gemma3_text": dataclasses.replace(_GEMMA_STYLE, window_layers="pattern"),
    "gemma3": dataclasses.replace(_GEMMA_STYLE, window_layers="pattern"),  # text_config read, + vision tower
    "opt": _Family("ffn_dim", gated_mlp=False, grouped_query=False, tie_word_embeddings=True),
    "mixtral": dataclasses.replace(_LLAMA_STYLE, moe="mixtral"),
    "qwen2_moe": dataclasses.replace(_QWEN_STYLE, moe="qwen_moe"),
    "qwen3_moe": dataclasses.replace(_QWEN_STYLE, moe="qwen_moe"),
    "deepseek_v2": dataclasses.replace(_LLAMA_STYLE, moe="deepseek", mla=True),
    "deepseek_v3": dataclasses.replace(_LLAMA_STYLE, moe="deepseek", mla=True),
    "gpt_oss": dataclasses.replace(_LLAMA_STYLE, moe="gpt_oss"),
}
# dtype as config.json writes it -> bytes a value takes as vLLM serves it with --dtype auto (module docstring)
SERVED_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 2}
# rope_scaling types whose max_position_embeddings is already the scaled context (vLLM's list)
_ROPE_TYPES_ALREADY_SCALED = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")

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
        "_attn_implementation_autoset", "bias", "head_dim_original", "query_pre_attn_scalar",
        "attn_logit_softcapping", "final_logit_softcapping", "rope_local_base_freq", "hidden_activation",
        "cache_implementation", "embedding_multiplier", "residual_multiplier", "attention_multiplier",
        "logits_scaling", "initial_context_length", "mm_tokens_per_image", "boi_token_index", "eoi_token_index",
        "image_token_index", "original_max_position_embeddings", "rope_interleave", "swiglu_limit",
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
    if config.get("model_type") == "gemma3":
        return _gemma3(file, config, name)
    return _Reader(file, config).spec(name)


def _gemma3(file: Path, config: dict[str, Any], name: str | None) -> ModelSpec:
    """Gemma 3 (multimodal, ``Gemma3ForConditionalGeneration``): the text model from ``text_config`` (its keys
    over the top level's), and the vision tower's weights, resident on the GPU, from ``vision_config`` as a
    SigLIP encoder: ``layers × (4 h² + 2 h × intermediate) + (image / patch)² × h + patch² × 3 × h`` plus the
    projector ``h × text hidden``. Images themselves are not simulated (traces are text)."""
    text, vision = config.get("text_config"), config.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise KvsimError(f"model config {file}: gemma3 needs text_config and vision_config objects")
    outer = {k: v for k, v in config.items() if k not in ("text_config", "vision_config", "model_type")}
    # Gemma3TextConfig's defaults for the keys google/gemma-3-*-it's text_config leaves out
    defaults = {"vocab_size": 262208, "max_position_embeddings": 131072}
    reader = _Reader(file, {**defaults, **outer, **text, "model_type": "gemma3"})
    left_out = [key for key in defaults if key not in text and key not in outer]
    if left_out:
        reader.notes.append(
            "Gemma3TextConfig defaults: " + ", ".join(f"{key} {defaults[key]}" for key in left_out)
        )
    if vision.get("model_type", "siglip_vision_model") != "siglip_vision_model":
        raise reader.error(f"gemma3 vision_config model_type {vision.get('model_type')!r} is not modelled")
    try:
        h, inter, layers = vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"]
        patch, image = vision["patch_size"], vision["image_size"]
        values = (h, inter, layers, patch, image)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise TypeError
    except (KeyError, TypeError):
        raise reader.error(
            "gemma3 vision_config needs positive integers hidden_size, intermediate_size, num_hidden_layers, "
            "patch_size and image_size"
        ) from None
    text_hidden = text.get("hidden_size", 0)
    reader.extra_params = (
        layers * (4 * h * h + 2 * h * inter)
        + (image // patch) ** 2 * h
        + patch * patch * 3 * h
        + h * text_hidden
    )
    reader.notes.append(
        f"vision tower (SigLIP, {layers} layers of {h}): {reader.extra_params / 1e6:.0f}M parameters resident; "
        "images are not simulated"
    )
    return reader.spec(name)


class _Reader:
    """Reads one config.json, remembering which fields it used, so that the rest can be named."""

    def __init__(self, file: Path, config: dict[str, Any]) -> None:
        self.file, self.config = file, config
        self.used: set[str] = set()
        self.notes: list[str] = []
        self.extra_params = 0  # a multimodal model's vision tower (gemma3)

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
        window, layer_types = self._layer_types(family, num_layers, max_model_len)
        tied = self.get("tie_word_embeddings", family.tie_word_embeddings)
        if not isinstance(tied, bool):
            raise self.error(f"'tie_word_embeddings' must be true or false, got {tied!r}")
        given_name = self.get("_name_or_path")
        dtype_bytes = self._dtype_bytes()
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
            dtype_bytes=dtype_bytes,
            gated_mlp=family.gated_mlp,
            tie_word_embeddings=tied,
            sliding_window=window,
            layer_types=layer_types,
        )
        if family.mla:
            values.update(read_latent_attention(self))
        if family.moe is not None:
            values.update(read_experts(self, family.moe, num_layers))
        values.update(read_quantization(self, has_experts=family.moe is not None))
        values["extra_params"] = self.extra_params
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
        if self.config.get("model_type") in ("gemma3", "gemma3_text"):
            self.notes.append(
                f"gemma3: max context {context} (already scaled: vLLM skips Gemma 3's rope scaling)"
            )
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
        scaled = int(base * factor)
        self.notes.append(
            f"rope scaling {rope_type} x{factor:g}: max context {scaled} tokens ({base} x {factor:g}), as vLLM "
            "derives it (_get_and_verify_max_len)"
        )
        return scaled

    def _layer_types(
        self, family: _Family, num_layers: int, max_model_len: int
    ) -> tuple[int | None, tuple[str, ...]]:
        """(sliding_window, attention type of each layer): from ``layer_types`` when given, else from the
        family's pattern (``_Family.window_layers``). No window, or one switched off: every layer full."""
        window = self.get("sliding_window")
        enabled = self.get("use_sliding_window", True)  # Qwen2/3's switch; the other families have none
        self.used.add("max_window_layers")  # Qwen2/3: which layers use the window, when it is on
        given = self.get("layer_types")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
            raise self.error(f"'sliding_window' must be a positive integer or null, got {window!r}")
        if given is not None:
            if not isinstance(given, list) or len(given) != num_layers:
                raise self.error(f"'layer_types' must be a list of {num_layers} layer types, got {given!r}")
            other = sorted({str(t) for t in given if t not in LAYER_TYPES})
            if other:
                raise self.error(
                    f"layer_types {', '.join(other)}: kvsim models {' and '.join(LAYER_TYPES)} layers only"
                )
            if SLIDING_ATTENTION in given and window is None:
                raise self.error("layer_types lists sliding_attention layers but 'sliding_window' is null")
            return (window if SLIDING_ATTENTION in given else None), tuple(given)
        if window is None or enabled is False:
            return None, ()
        if family.window_layers == "qwen" and window < max_model_len:
            raise self.error(
                f"use_sliding_window with sliding_window {window} below the context ({max_model_len} tokens): "
                "which layers take the window (max_window_layers) is read differently by transformers and "
                "vLLM, so kvsim does not model it; a config with use_sliding_window false is modelled"
            )
        if family.window_layers == "even":
            types = tuple(SLIDING_ATTENTION if i % 2 == 0 else FULL_ATTENTION for i in range(num_layers))
            self.notes.append(
                f"sliding_window {window} on the even layers (Gemma 2), full attention on the odd"
            )
        elif family.window_layers == "pattern":
            pattern = self.integer("sliding_window_pattern", 6)  # Gemma3TextConfig's default
            types = tuple(
                FULL_ATTENTION if (i + 1) % pattern == 0 else SLIDING_ATTENTION for i in range(num_layers)
            )
            self.notes.append(
                f"sliding_window {window}; every {pattern}th layer global (sliding_window_pattern)"
            )
        else:
            types = (SLIDING_ATTENTION,) * num_layers
            self.notes.append(f"sliding_window {window} on every layer")
        return window, types

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


def _refuse_embedding_projection(reader: _Reader) -> None:
    dim = reader.get("word_embed_proj_dim")
    if dim is not None and dim != reader.config.get("hidden_size"):
        raise reader.error(
            f"word_embed_proj_dim {dim!r} differs from hidden_size: OPT's project_in/project_out layers are not "
            "modelled yet"
        )


# Each raises a KvsimError naming what is not modelled; modelling a feature replaces its check.
_REFUSALS: tuple[Callable[[_Reader], None], ...] = (_refuse_embedding_projection,)
