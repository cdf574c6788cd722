"""Bad input is a KvsimError naming the file, the line and the field; an empty trace is an error."""

import json
import re

import pytest

from kvsim.errors import KvsimError
from kvsim.traces import read_file

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
AZURE_ROW = "2023-11-16 18:15:46.6805900,374,44"

# (case, bad data line, field named in the error, words in the error)
AZURE_CASES = [
    ("non-numeric", "2023-11-16 18:15:50.1,abc,5", "ContextTokens", "not an integer: 'abc'"),
    ("fractional count", "2023-11-16 18:15:50.1,12.5,5", "ContextTokens", "not an integer: '12.5'"),
    ("zero", "2023-11-16 18:15:50.1,12,0", "GeneratedTokens", "must be >= 1, got 0"),
    ("negative", "2023-11-16 18:15:50.1,-3,7", "ContextTokens", "must be >= 1, got -3"),
    ("missing field", "2023-11-16 18:15:50.1,12", "GeneratedTokens", "missing"),
    ("empty field", "2023-11-16 18:15:50.1,,7", "ContextTokens", "not an integer: ''"),
    ("over 64 bits", "2023-11-16 18:15:50.1,99999999999999999999,7", "ContextTokens", "must fit in a 64-bit"),
    ("bad timestamp", "2023-11-16 25:61:00.1,12,7", "TIMESTAMP", "bad timestamp"),
    ("NaT timestamp", "NaT,12,7", "TIMESTAMP", "bad timestamp"),
    ("empty timestamp", ",12,7", "TIMESTAMP", "bad timestamp"),
]


def azure_file(tmp_path, bad_row, line=7):
    rows = [AZURE_HEADER] + [AZURE_ROW] * 9
    rows[line - 1] = bad_row
    path = tmp_path / "azure.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(("case", "row", "field", "words"), AZURE_CASES, ids=[c[0] for c in AZURE_CASES])
def test_a_bad_azure_line_names_file_line_and_field(tmp_path, case, row, field, words):
    path = azure_file(tmp_path, row)
    with pytest.raises(KvsimError) as info:
        read_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 7, field '{field}'")
    assert words in message


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(f"{AZURE_HEADER}\n{AZURE_ROW}\n\n\n{AZURE_ROW}\n2023-11-16 18:15:50.1,0,5\n")
    with pytest.raises(KvsimError, match=r"line 6, field 'ContextTokens'"):
        read_file(path)


def test_an_extra_field_names_the_line(tmp_path):
    with pytest.raises(KvsimError, match=r"line 7: 4 fields, but the header names 3"):
        read_file(azure_file(tmp_path, AZURE_ROW + ",9"))


MOONCAKE_ROW = {"timestamp": 10, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]}
MOONCAKE_CASES = [
    ("missing field", {"timestamp": 10, "input_length": 600, "hash_ids": [0]}, "output_length", "missing"),
    ("non-numeric", {**MOONCAKE_ROW, "input_length": "600"}, "input_length", "not an integer: '600'"),
    ("zero", {**MOONCAKE_ROW, "output_length": 0}, "output_length", "must be >= 1, got 0"),
    ("negative", {**MOONCAKE_ROW, "input_length": -1}, "input_length", "must be >= 1, got -1"),
    ("bad timestamp", {**MOONCAKE_ROW, "timestamp": "noon"}, "timestamp", "bad timestamp"),
    ("negative timestamp", {**MOONCAKE_ROW, "timestamp": -5}, "timestamp", "bad timestamp"),
    ("over 64 bits", {**MOONCAKE_ROW, "input_length": 10**20}, "input_length", "must fit in a 64-bit"),
    ("beyond any float", {**MOONCAKE_ROW, "timestamp": 10**400}, "timestamp", "must be finite"),
    ("empty hash list", {**MOONCAKE_ROW, "hash_ids": []}, "hash_ids", "non-empty list"),
    ("non-integer hash", {**MOONCAKE_ROW, "hash_ids": [1, "a"]}, "hash_ids", "must be an integer"),
]


@pytest.mark.parametrize(
    ("case", "record", "field", "words"), MOONCAKE_CASES, ids=[c[0] for c in MOONCAKE_CASES]
)
def test_a_bad_mooncake_line_names_file_line_and_field(tmp_path, case, record, field, words):
    records = [MOONCAKE_ROW] * 9
    records[6] = record
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(KvsimError) as info:
        read_file(path)
    assert str(info.value).startswith(f"{path}, line 7, field '{field}'")
    assert words in str(info.value)


def test_a_line_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(MOONCAKE_ROW) + "\n{oops\n")
    with pytest.raises(KvsimError, match=r"line 2: not valid JSON"):
        read_file(path)


def test_length_dataset_total_must_be_the_sum(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens,num_total_tokens\n5,2,7\n5,2,8\n")
    with pytest.raises(KvsimError, match=r"line 3, field 'num_total_tokens': 8 is not .* = 7"):
        read_file(path)


def test_kvsim_files_reject_repeated_request_ids(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(
        "request_id,arrival_s,num_prompt_tokens,num_output_tokens\n3,0,1,1\n4,1,1,1\n3,2,1,1\n"
    )
    with pytest.raises(KvsimError, match=r"line 4, field 'request_id': 3 repeats line 2"):
        read_file(csv_path)
    jsonl_path = tmp_path / "t.jsonl"
    row = {"request_id": 3, "arrival_s": 0.0, "num_prompt_tokens": 1, "num_output_tokens": 1}
    jsonl_path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(KvsimError, match=r"line 2, field 'request_id': 3 repeats line 1"):
        read_file(jsonl_path)


def test_kvsim_csv_rejects_non_finite_arrivals(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("request_id,arrival_s,num_prompt_tokens,num_output_tokens\n0,0,1,1\n1,inf,1,1\n")
    with pytest.raises(KvsimError, match=r"line 3, field 'arrival_s': bad timestamp: not finite"):
        read_file(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        (AZURE_HEADER + "\n", "has a header but no requests"),
        (
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,ChatGPT,5,0,5,API log\n",
            "every one of its 1 rows is a failed request",
        ),
    ],
)
def test_an_empty_trace_is_an_error(tmp_path, text, words):
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(KvsimError, match=re.escape(words)):
        read_file(path)


def test_an_empty_jsonl_trace_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"kvsim_trace": 1, "source": "x"}) + "\n")
    with pytest.raises(KvsimError, match="has no requests"):
        read_file(path)


def test_a_missing_file_and_a_folder_are_errors(tmp_path):
    with pytest.raises(KvsimError, match="does not exist"):
        read_file(tmp_path / "nope.csv")
    with pytest.raises(KvsimError, match="is a folder"):
        read_file(tmp_path)
