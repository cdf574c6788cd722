"""Model and GPU presets, and the Hugging Face config.json loader."""

import json

import pytest

from kvsim.errors import KvsimError
from kvsim.simulator.specs import GPUS, MODELS, GpuSpec, ModelSpec, kv_capacity_bytes, model_num_params


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
    result = CliRunner().invoke(main, [*args, "--model", str(folder / "config.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "o" / "paged_block_size-16" / "config.json").read_text())
    assert config["model_spec"]["name"] == "tiny-llama" and config["model_spec"]["num_layers"] == 4
