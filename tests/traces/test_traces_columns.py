"""Traces in other tools' column names (traces/loaders/columns.py): recognised names, the units rule, the
mapping option, and errors that say what each format needs."""

import json

import pytest
from click.testing import CliRunner

from kvsim.cli import main
from kvsim.errors import KvsimError
from kvsim.traces import LengthTable, Trace, detect_format, load_trace, read_file
from kvsim.traces.loaders.columns import ColumnMapping, unit_in_name


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("prompt", "output"),
    [
        ("prompt_tokens", "completion_tokens"),  # OpenAI usage
        ("input_length", "output_length"),
        ("input_tokens", "output_tokens"),
    ],
)
def test_common_token_column_names_are_recognised_in_csv_and_jsonl(tmp_path, prompt, output):
    csv_path = write(tmp_path, "t.csv", f"arrival_s,{prompt},{output}\n0.5,10,5\n1.25,20,7\n")
    jsonl_path = write(
        tmp_path,
        "t.jsonl",
        "".join(
            json.dumps({"arrival_ms": t, prompt: p, output: o}) + "\n"
            for t, p, o in [(500, 10, 5), (1250, 20, 7)]
        ),
    )
    for path in (csv_path, jsonl_path):
        assert detect_format(path) == "columns"
        trace = read_file(path)
        assert trace.arrival_s.tolist() == [0.5, 1.25]  # arrival_s in s, arrival_ms in ms
        assert trace.num_prompt_tokens.tolist() == [10, 20]
        assert trace.num_output_tokens.tolist() == [5, 7]
        assert f"num_output_tokens from '{output}'" in trace.provenance.notes


def test_a_timestamp_column_without_a_unit_is_refused_with_the_option_that_gives_it(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,prompt_tokens,output_tokens\n500,10,5\n1250,20,7\n")
    with pytest.raises(
        KvsimError, match=r"column 'timestamp' holds numbers but its name does not say their unit"
    ) as info:
        load_trace(path)
    assert "--trace-columns arrival_s=timestamp:s (or :ms" in str(info.value)
    trace = load_trace(path, columns="arrival_s=timestamp:ms")
    assert trace.arrival_s.tolist() == [0.5, 1.25]


def test_date_time_arrivals_carry_their_unit_and_count_from_the_earliest(tmp_path):
    path = write(
        tmp_path,
        "t.csv",
        "arrival_time,input_length,output_length\n2023-11-16 18:17:05.5,10,5\n2023-11-16 18:17:03.25,10,6\n",
    )
    trace = read_file(path)
    assert trace.arrival_s.tolist() == [0.0, 2.25]
    assert trace.num_output_tokens.tolist() == [6, 5]  # sorted by arrival


def test_openai_usage_jsonl_without_times_is_a_length_dataset(tmp_path):
    lines = [
        {"id": "a", "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}},
        {"id": "b", "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
    ]
    path = write(tmp_path, "u.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    table = read_file(path)
    assert isinstance(table, LengthTable)
    assert table.num_prompt_tokens.tolist() == [10, 12]
    assert table.num_output_tokens.tolist() == [5, 3]
    flat = write(tmp_path, "f.jsonl", '{"prompt_tokens": 4, "completion_tokens": 2}\n')
    trace = load_trace(flat, rate=2.0, seed=1)  # paired with generated arrivals, as a length dataset
    assert isinstance(trace, Trace) and trace.num_output_tokens.tolist() == [2]


def test_the_mapping_names_any_columns_and_their_unit(tmp_path):
    path = write(tmp_path, "t.csv", "ts,in,out\n1500,10,5\n250,20,7\n")
    trace = load_trace(path, columns="arrival_s=ts:ms,num_prompt_tokens=in,num_output_tokens=out")
    assert trace.arrival_s.tolist() == [0.25, 1.5]
    assert trace.num_prompt_tokens.tolist() == [20, 10]
    # a name that says its unit needs none in the mapping; the fields left out are recognised by name
    path = write(tmp_path, "u.csv", "sent_us,prompt_tokens,completion_tokens\n2000000,10,5\n")
    assert load_trace(path, columns="arrival_s=sent_us").arrival_s.tolist() == [2.0]


def test_a_bad_line_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,completion_tokens\n0,10,5\n1,ten,5\n")
    with pytest.raises(KvsimError, match=r"t.csv, line 3, field 'prompt_tokens': not an integer: 'ten'"):
        read_file(path)
    path = write(tmp_path, "t.jsonl", '{"prompt_tokens": 1, "completion_tokens": 5}\n{"prompt_tokens": 1}\n')
    with pytest.raises(KvsimError, match=r"t.jsonl, line 2, field 'completion_tokens': missing"):
        read_file(path)


def test_two_columns_for_one_field_are_refused(tmp_path):
    path = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,input_tokens,output_tokens\n0,1,1,1\n")
    with pytest.raises(
        KvsimError, match=r"'prompt_tokens' and 'input_tokens' could each be num_prompt_tokens"
    ):
        read_file(path)
    trace = read_file(path, columns="num_prompt_tokens=input_tokens")
    assert trace.num_prompt_tokens.tolist() == [1]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("arrival=ts", "unknown field 'arrival'; fields: arrival_s, num_prompt_tokens, num_output_tokens"),
        ("num_prompt_tokens=in:ms", "only arrival_s takes a unit"),
        ("arrival_s=ts:minutes", "unknown time unit 'minutes'"),
        ("arrival_s", "is not FIELD=COLUMN"),
        ("arrival_s=a,arrival_s=b", "arrival_s given twice"),
    ],
)
def test_mapping_errors_say_the_fix(text, words):
    with pytest.raises(KvsimError, match="trace_columns: ") as info:
        ColumnMapping.parse(text)
    assert words in str(info.value)


def test_a_mapped_column_that_is_not_there_lists_the_files_columns(tmp_path):
    path = write(tmp_path, "t.csv", "ts,in,out\n1,2,3\n")
    with pytest.raises(
        KvsimError, match=r"names column 'time' for arrival_s, but the file has only 'ts', 'in'"
    ):
        read_file(path, columns="arrival_s=time:s,num_prompt_tokens=in,num_output_tokens=out")
    with pytest.raises(KvsimError, match=r"no column for num_prompt_tokens among 'ts', 'in', 'out'"):
        read_file(path, columns="arrival_s=ts:s")
    with pytest.raises(KvsimError, match="bundled trace 'azure-conv' has known columns"):
        load_trace("azure-conv", columns="arrival_s=ts:s")


def test_an_unknown_format_error_lists_the_columns_each_format_needs(tmp_path):
    path = write(tmp_path, "t.csv", "a,b\n1,2\n")
    with pytest.raises(KvsimError) as info:
        read_file(path)
    message = str(info.value)
    assert "\n" not in message  # the CLI prints errors on one line
    for needs in (
        "azure: TIMESTAMP,ContextTokens,GeneratedTokens",
        "kvsim-csv: arrival_s,num_prompt_tokens,num_output_tokens",
        "mooncake: timestamp, input_length, output_length, hash_ids",
        "lengths: num_prefill_tokens,num_decode_tokens",
        "completion_tokens",
        "--trace-columns arrival_s=COLUMN:UNIT",
    ):
        assert needs in message
    jsonl = write(tmp_path, "t.jsonl", '{"a": 1}\n')
    with pytest.raises(KvsimError, match=r"cannot tell the JSONL format.*azure: TIMESTAMP"):
        read_file(jsonl)


def test_kvsim_own_jsonl_is_still_kvsim_jsonl(tmp_path):
    path = write(tmp_path, "k.jsonl", '{"arrival_s": 0.5, "num_prompt_tokens": 3, "num_output_tokens": 4}\n')
    assert detect_format(path) == "kvsim-jsonl"


@pytest.mark.parametrize(
    ("name", "unit"),
    [("arrival_s", "s"), ("timestamp_ms", "ms"), ("time (us)", "us"), ("ts-ns", "ns"), ("timestamp", None)],
)
def test_the_unit_a_name_says(name, unit):
    assert unit_in_name(name) == unit


def test_traces_stats_takes_the_mapping(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,prompt_tokens,output_tokens\n0,10,5\n2000,20,7\n")
    result = CliRunner().invoke(main, ["traces", "stats", str(path), "--columns", "arrival_s=timestamp:ms"])
    assert result.exit_code == 0, result.output
    assert "span              2.0 s" in result.output
    bad = CliRunner().invoke(main, ["traces", "stats", str(path)])
    assert bad.exit_code == 2 and "--trace-columns arrival_s=timestamp:s" in bad.output


TIMESTAMP_CSV = "timestamp,prompt_tokens,output_tokens\n" + "".join(
    f"{250 * i},{100 + i},{5 + i % 3}\n" for i in range(12)
)


def test_simulate_takes_the_mapping_as_an_option_and_as_a_config_key(tmp_path):
    path = write(tmp_path, "t.csv", TIMESTAMP_CSV)
    args = ["simulate", "--trace", str(path), "--num-requests", "8", "--out", str(tmp_path / "cli")]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "--trace-columns arrival_s=timestamp:s" in refused.output
    result = CliRunner().invoke(main, [*args, "--trace-columns", "arrival_s=timestamp:ms"])
    assert result.exit_code == 0, result.output
    config = json.loads(next((tmp_path / "cli").glob("*/config.json")).read_text())
    assert config["trace"]["columns"] == "arrival_s=timestamp:ms"  # enough to rerun
    toml = write(tmp_path, "run.toml", f'trace = "{path}"\ntrace_columns = "arrival_s=timestamp:ms"\n')
    from_file = CliRunner().invoke(main, ["simulate", "--config", str(toml), "--num-requests", "8"])
    assert from_file.exit_code == 0, from_file.output


def test_a_sweep_workload_takes_the_mapping_and_checks_it_at_once(tmp_path):
    from kvsim.simulator.sweep.point import SEED_FIELDS, WORKLOAD_FIELDS, Workload

    assert "trace_columns" in WORKLOAD_FIELDS and "trace_columns" in SEED_FIELDS
    path = write(tmp_path, "t.csv", TIMESTAMP_CSV)
    trace = Workload(trace=str(path), trace_columns="arrival_s=timestamp:ms", num_requests=4).load()
    assert trace.arrival_s.tolist() == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(KvsimError, match="trace_columns: unknown field 'arrival'"):
        Workload(trace=str(path), trace_columns="arrival=timestamp:ms")
