"""Model and GPU presets, and the Hugging Face config.json loader."""

import dataclasses
import json

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch
from kvsim.simulator.cost import make_cost_model
from kvsim.simulator.specs import (
    GPUS,
    MODELS,
    GpuSpec,
    ModelSpec,
    kv_capacity_bytes,
    model_num_params,
    weight_bytes_per_gpu,
)


def test_every_preset_named_in_the_issue_exists():
    for name in (
        "OPT-13B",
        "OPT-66B",
        "OPT-175B",
        "Llama-2-7B",
        "Llama-2-13B",
        "Llama-2-70B",
        "CodeLlama-34B",
        "Llama-3-8B",
        "Llama-3-70B",
        "Llama-3.1-8B",
        "Mistral-7B",
        "Qwen2.5-7B",
        "Qwen2.5-72B",
    ):
        assert ModelSpec.from_name(name).name == name
    for name in ("A100-40GB", "A100-80GB", "H100-SXM", "H200", "L4"):
        gpu = GpuSpec.from_name(name)
        assert gpu.name == name and gpu.citation and gpu.interconnect


def test_opt_13b_keeps_800_kib_of_kv_per_token():
    # vLLM paper §3: OPT-13B stores 2 (K,V) × 5120 (hidden) × 40 (layers) × 2 bytes = 800 KB per token.
    assert ModelSpec.from_name("opt-13b").kv_bytes_per_token() == 800 * 1024


def test_gqa_kv_heads_split_across_tp_and_replicate_below_one_per_gpu():
    llama70 = MODELS["llama-2-70b"]  # 8 KV heads of 128, 80 layers
    assert llama70.kv_bytes_per_token(tp=1) == 2 * 80 * 8 * 128 * 2
    assert llama70.kv_bytes_per_token(tp=4) == 2 * 80 * 2 * 128 * 2
    assert llama70.kv_bytes_per_token(tp=16) == 2 * 80 * 1 * 128 * 2


@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("llama-2-7b", 6.74),
        ("llama-2-70b", 69.0),
        ("mistral-7b", 7.24),
        ("qwen2.5-7b", 7.62),
        ("opt-175b", 175.2),
    ],
)
def test_parameter_counts_match_the_published_sizes(name, billions):
    assert model_num_params(MODELS[name]) / 1e9 == pytest.approx(billions, rel=0.01)


def test_opt_13b_on_a100_40gb_leaves_about_12_gb_for_kv():
    # vLLM paper §6.1 / Fig. 1: about 12 GB of KV cache for OPT-13B on one A100-40GB.
    capacity = kv_capacity_bytes(MODELS["opt-13b"], GPUS["a100-40gb"])
    assert 11e9 < capacity < 13.5e9


def test_unknown_names_list_the_presets():
    with pytest.raises(KvsimError, match=r"presets: .*llama-2-7b"):
        ModelSpec.from_name("llama-9")
    with pytest.raises(KvsimError, match=r"presets: .*h100-sxm"):
        GpuSpec.from_name("v100")


def test_tp_must_divide_heads():
    MODELS["llama-2-70b"].check_tp(8)
    with pytest.raises(KvsimError, match=r"num_heads .*tp=3"):
        MODELS["llama-2-70b"].check_tp(3)


TINY_LLAMA = {
    "model_type": "llama",
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "intermediate_size": 688,
    "vocab_size": 1000,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
    "_name_or_path": "tiny-llama",
}


def _write(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_hf_loader_reads_a_llama_style_config(tmp_path):
    spec = ModelSpec.from_hf_config(_write(tmp_path, TINY_LLAMA))
    assert spec == ModelSpec("tiny-llama", 4, 256, 8, 2, 32, 688, 1000, 2048, dtype_bytes=2, gated_mlp=True)


def test_hf_loader_reads_an_opt_config_as_ungated_multi_head(tmp_path):
    path = (
        _write(
            tmp_path,
            {
                "model_type": "opt",
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 4,
                "ffn_dim": 256,
                "vocab_size": 100,
                "max_position_embeddings": 128,
                "torch_dtype": "float16",
            },
        )
        / "config.json"
    )
    spec = ModelSpec.from_hf_config(path, name="tiny-opt")
    assert (spec.num_kv_heads, spec.head_dim, spec.intermediate_size, spec.gated_mlp) == (4, 16, 256, False)


def test_hf_loader_names_a_missing_key(tmp_path):
    folder = _write(
        tmp_path,
        {
            "model_type": "mistral",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "vocab_size": 100,
            "max_position_embeddings": 128,
        },
    )
    with pytest.raises(KvsimError, match="missing key 'intermediate_size'"):
        ModelSpec.from_hf_config(folder)


def test_hf_loader_rejects_other_families_and_bad_files(tmp_path):
    with pytest.raises(KvsimError, match="model_type 'bert' is not supported"):
        ModelSpec.from_hf_config(_write(tmp_path, {"model_type": "bert"}))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(KvsimError, match="not valid JSON"):
        ModelSpec.from_hf_config(tmp_path)
    with pytest.raises(KvsimError, match="cannot read"):
        ModelSpec.from_hf_config(tmp_path / "absent.json")


def test_a_model_name_may_be_a_hugging_face_config_path(tmp_path):
    folder = _write(tmp_path, TINY_LLAMA)
    by_file, by_folder = ModelSpec.from_name(str(folder / "config.json")), ModelSpec.from_name(str(folder))
    assert by_file == by_folder == ModelSpec.from_hf_config(folder) and by_file.name == "tiny-llama"
    with pytest.raises(KvsimError, match="no such file"):
        ModelSpec.from_name(str(tmp_path / "absent.json"))


def test_cli_simulates_a_model_given_as_a_config_json(tmp_path):
    from click.testing import CliRunner

    from kvsim.cli import main

    folder = _write(tmp_path, TINY_LLAMA)
    args = ["simulate", "--trace", "azure-conv", "--num-requests", "20", "--gpu", "l4"]
    result = CliRunner().invoke(
        main, [*args, "--model", str(folder / "config.json"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "o" / "paged_block_size-16" / "config.json").read_text())
    assert config["model_spec"]["name"] == "tiny-llama" and config["model_spec"]["num_layers"] == 4


# --- issue 19 item 5: every config.json field is modelled, refused by name, or noted as ignored ---


def _spec(tmp_path, **changes):
    config = {**TINY_LLAMA, **changes}
    for key in [k for k, v in changes.items() if v is _DROP]:
        del config[key]
    return ModelSpec.from_hf_config(_write(tmp_path, config))


_DROP = object()


def test_hf_loader_reads_the_newer_dtype_key_as_torch_dtype(tmp_path):
    """transformers >= 4.56 writes `dtype`; older files `torch_dtype`. Both name the same precision."""
    newer = _spec(tmp_path, torch_dtype=_DROP, dtype="bfloat16")
    assert newer == _spec(tmp_path) and newer.dtype_bytes == 2
    with pytest.raises(KvsimError, match="'dtype' 'int8' is not modelled"):
        _spec(tmp_path, torch_dtype=_DROP, dtype="int8")
    with pytest.raises(KvsimError, match="'dtype' 'float16' and 'torch_dtype' 'bfloat16' disagree"):
        _spec(tmp_path, dtype="float16")


def test_a_float32_checkpoint_is_served_in_16_bits_as_vllm_dtype_auto_does(tmp_path):
    """vLLM's --dtype auto serves float32 weights in float16 (vllm/config.py _get_and_verify_dtype), whichever key
    names it; the notes say so."""
    by_old_key = _spec(tmp_path, torch_dtype="float32")
    by_new_key = _spec(tmp_path, torch_dtype=_DROP, dtype="float32")
    assert by_old_key.dtype_bytes == by_new_key.dtype_bytes == 2
    assert any("float32: served in float16" in note for note in by_new_key.notes)


def test_tied_embeddings_are_one_matrix_in_weight_bytes_and_the_lm_head_still_costs(tmp_path):
    untied, tied = _spec(tmp_path), _spec(tmp_path, tie_word_embeddings=True)
    assert (untied.tie_word_embeddings, tied.tie_word_embeddings) == (False, True)
    assert weight_bytes_per_gpu(untied) - weight_bytes_per_gpu(tied) == 1000 * 256 * 2  # vocab x hidden x 2 B
    batch = Batch(num_decode_seqs=4, decode_kv_tokens=400, decode_kv_blocks=28)
    tied_step = make_cost_model(tied, GPUS["l4"]).step_time(batch)
    assert tied_step == make_cost_model(untied, GPUS["l4"]).step_time(batch) and tied_step.lm_head_s > 0


def test_opt_ties_its_lm_head_to_the_embedding_when_the_key_is_absent(tmp_path):
    # OPTConfig leaves tie_word_embeddings at PretrainedConfig's default (true); vLLM shares the matrix.
    opt = MODELS["opt-13b"]
    h, ffn, layers, vocab = 5120, 20480, 40, 50272
    assert opt.tie_word_embeddings and not MODELS["llama-2-7b"].tie_word_embeddings
    assert model_num_params(opt) == layers * (4 * h * h + 2 * h * ffn) + vocab * h


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantization_config": {"quant_method": "bitsandbytes"}}, r"quant_method 'bitsandbytes' is not"),
        ({"model_type": "qwen2", "use_sliding_window": True, "sliding_window": 1024}, r"sliding_window 1024"),
        (
            {"num_local_experts": 8, "num_experts_per_tok": 2},  # llama has no experts: refused by name
            r"'num_local_experts', 'num_experts_per_tok': field\(s\) of an architecture",
        ),
        ({"n_routed_experts": 64}, r"'n_routed_experts': field\(s\) of an architecture"),
        ({"kv_lora_rank": 512}, r"'kv_lora_rank': field\(s\) of an architecture"),
        ({"layer_types": ["full_attention", "sliding_attention"] * 2}, r"'sliding_window' is null"),
        ({"n_shared_experts": 2}, r"'n_shared_experts': field\(s\) of an architecture kvsim does not model"),
        ({"rope_scaling": {"factor": 4.0}}, r"names no rope_type"),
    ],
)
def test_fields_that_change_memory_or_cost_and_are_not_modelled_are_refused_by_name(
    tmp_path, changes, message
):
    with pytest.raises(KvsimError, match=message):
        _spec(tmp_path, **changes)


def test_a_window_that_is_off_or_covers_the_context_is_full_attention(tmp_path):
    off = _spec(
        tmp_path, model_type="qwen2", use_sliding_window=False, sliding_window=512, max_window_layers=2
    )
    assert off == _spec(tmp_path, model_type="qwen2") and off.sliding_window is None
    assert _spec(tmp_path, model_type="mistral", sliding_window=None).sliding_window is None
    covering = _spec(tmp_path, model_type="mistral", sliding_window=2048)
    assert covering.sliding_window == 2048 and covering.max_model_len == 2048 and not covering.has_window
    assert dataclasses.replace(covering, max_model_len=4096).has_window  # --max-model-len beyond the window
    assert _spec(tmp_path, layer_types=["full_attention"] * 4).sliding_window is None


def test_rope_scaling_sets_the_max_context_as_vllm_derives_it(tmp_path):
    # vLLM 0.34: "YaRN variants leave max_position_embeddings already scaled" (0.6 multiplied the original)
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
    assert _spec(tmp_path, rope_scaling=yarn).max_model_len == 2048
    assert _spec(tmp_path, rope_scaling={"type": "linear", "factor": 2.0}).max_model_len == 4096
    llama3 = {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 256}
    assert _spec(tmp_path, rope_scaling=llama3).max_model_len == 2048  # already the scaled context


def test_fields_that_do_not_matter_are_named_in_the_notes(tmp_path):
    spec = _spec(tmp_path, rope_theta=10000.0, bos_token_id=1, rms_norm_eps=1e-5, frobnication=3)
    assert "ignored (no effect on memory or cost): rope_theta, bos_token_id, rms_norm_eps" in spec.notes
    assert "ignored, not recognised: frobnication" in spec.notes


def test_the_notes_reach_the_run_folders_config_json(tmp_path):
    from click.testing import CliRunner

    from kvsim.cli import main

    folder = _write(tmp_path, {**TINY_LLAMA, "rope_theta": 10000.0})
    args = ["simulate", "--trace", "azure-conv", "--num-requests", "5", "--gpu", "l4", "--model", str(folder)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    (config_json,) = (tmp_path / "o").glob("*/config.json")
    notes = json.loads(config_json.read_text())["model_spec"]["notes"]
    assert "ignored (no effect on memory or cost): rope_theta" in notes
