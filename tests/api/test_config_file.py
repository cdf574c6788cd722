"""Config files (kvsim/config_file.py): TOML or YAML by suffix, the same mapping either way, clear errors."""

from __future__ import annotations

import pytest

from kvsim.config_file import read_config_file
from kvsim.errors import KvsimError

TOML = """\
trace = "azure-code"
num_requests = 300
rate = 2.5
allocator = ["paged", "reserved:max"]
report = true
"""
YAML = """\
trace: azure-code
num_requests: 300
rate: 2.5
allocator: [paged, "reserved:max"]
report: true
"""


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml_and_toml_give_the_same_mapping(tmp_path, suffix):
    (tmp_path / "run.toml").write_text(TOML)
    (tmp_path / f"run{suffix}").write_text(YAML)
    expected = {
        "trace": "azure-code",
        "num_requests": 300,
        "rate": 2.5,
        "allocator": ["paged", "reserved:max"],
        "report": True,
    }
    assert read_config_file(tmp_path / "run.toml") == expected
    assert read_config_file(tmp_path / f"run{suffix}") == expected


def test_yaml_keeps_sweep_ranges_as_text_not_base_60_numbers(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("grid:\n  rate: 1:10:1\n  x: 1:30\n  y: 190:20:30.15\n  n: 12\n")
    grid = read_config_file(path)["grid"]
    assert grid == {"rate": "1:10:1", "x": "1:30", "y": "190:20:30.15", "n": 12}


def test_yaml_reads_exponents_as_numbers_as_toml_does(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("a: 1e9\nb: 1.5e3\nc: -2E-3\nd: 1.0e+3\ne: .5\nf: 7\ng: 1e9x\nh: '1e9'\n")
    assert read_config_file(path) == {
        "a": 1e9,
        "b": 1500.0,
        "c": -0.002,
        "d": 1000.0,
        "e": 0.5,
        "f": 7,
        "g": "1e9x",
        "h": "1e9",
    }


def test_an_empty_yaml_file_is_an_empty_mapping(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert read_config_file(path) == {}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.yaml", "trace: [azure-code\n", r"(?s)config file .*bad\.yaml: not valid YAML .*line 2"),
        ("bad.toml", "trace = \n", r"config file .*bad\.toml: not valid TOML"),
        ("run.cfg", "trace: azure-code\n", r"not valid TOML .*needs the suffix \.yaml or \.yml"),
        ("list.yaml", "- paged\n- vattention\n", "the top level must be a mapping of keys, not a list"),
        ("keys.yaml", "1: paged\n", "keys must be names, not 1"),
    ],
)
def test_a_bad_file_is_named_with_what_is_wrong(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(KvsimError, match=message):
        read_config_file(path)


def test_a_missing_file_is_named_with_what_it_was_for(tmp_path):
    with pytest.raises(KvsimError, match=r"sweep file .*nope\.yaml: not found"):
        read_config_file(tmp_path / "nope.yaml", "sweep file")
