"""Each file format loads into the same Trace, sorted stably by arrival; kvsim's own formats round-trip exactly."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsim.errors import KvsimError
from kvsim.traces import (
    LengthTable,
    Provenance,
    Request,
    Trace,
    detect_format,
    load_trace,
    read_file,
    save_trace,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:46.6805900,396,109
2023-11-16 18:15:45.0000001,10,2
"""


def test_azure_arrivals_are_seconds_from_the_earliest_and_ties_keep_file_order(tmp_path):
    trace = read_file(write(tmp_path, "a.csv", AZURE))
    assert detect_format(tmp_path / "a.csv") == "azure"
    assert trace.request_id.tolist() == [2, 0, 1]  # row 2 is earliest; rows 0 and 1 tie and keep their order
    assert trace.arrival_s.tolist() == pytest.approx([0.0, 1.6805899, 1.6805899], abs=1e-12)
    assert trace.num_prompt_tokens.tolist() == [10, 374, 396]
    assert trace.num_output_tokens.tolist() == [2, 44, 109]


def test_mooncake_timestamps_are_milliseconds_and_hash_ids_are_kept(tmp_path):
    lines = [
        {"timestamp": 1500, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]},
        {"timestamp": 0, "input_length": 10, "output_length": 7, "hash_ids": [0]},
    ]
    path = write(tmp_path, "m.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    assert detect_format(path) == "mooncake"
    trace = read_file(path)
    assert trace.arrival_s.tolist() == [0.0, 1.5]
    assert trace.prefix_block_hashes == [(0,), (0, 1)]
    assert list(trace)[1] == Request(0, 1.5, 600, 3, prefix_block_hashes=(0, 1))


def test_a_length_dataset_is_a_table_without_arrival_times(tmp_path):
    path = write(
        tmp_path,
        "l.csv",
        "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n5,2,7,2.5\n3,1,4,3\n",
    )
    assert detect_format(path) == "lengths"
    table = read_file(path)
    assert isinstance(table, LengthTable)
    assert table.num_prompt_tokens.tolist() == [5, 3] and table.num_output_tokens.tolist() == [2, 1]


def test_a_vidur_trace_keeps_its_arrival_times(tmp_path):
    path = write(tmp_path, "v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,10,3\n0.25,7,2\n")
    assert detect_format(path) == "vidur"
    trace = read_file(path)
    assert trace.arrival_s.tolist() == [0.25, 0.5] and trace.num_prompt_tokens.tolist() == [7, 10]


BURSTGPT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,0,1087,Conversation log
118,GPT-4,417,276,693,API log
118,ChatGPT,0,0,0,Conversation log
"""


def test_burstgpt_leaves_out_failed_requests_and_counts_them(tmp_path):
    path = write(tmp_path, "b.csv", BURSTGPT)
    assert detect_format(path) == "burstgpt"
    trace = read_file(path)
    assert trace.request_id.tolist() == [0, 2]  # ids are data-row positions, so they still point at the rows
    assert trace.arrival_s.tolist() == [5.0, 118.0]
    assert trace.num_output_tokens.tolist() == [18, 276]
    assert trace.meta["num_failed"] == 2 and trace.meta["num_rows"] == 4
    assert trace.meta["requests_by_model"] == {"ChatGPT": 1, "GPT-4": 1}
    assert "2 failed requests (0 response tokens) of 4 rows left out" in trace.provenance.notes


def test_burstgpt_zero_request_tokens_on_a_successful_row_is_an_error(tmp_path):
    path = write(tmp_path, "b.csv", BURSTGPT.replace("417,276", "0,276"))
    with pytest.raises(KvsimError, match=r"line 4, field 'Request tokens': token count must be >= 1, got 0"):
        read_file(path)


def test_the_format_can_be_given_when_content_does_not_say(tmp_path):
    path = write(tmp_path, "x.txt", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,5,6\n")
    assert len(read_file(path, "azure")) == 1
    with pytest.raises(KvsimError, match=r"missing|no column"):
        read_file(path, "burstgpt")
    unknown = write(tmp_path, "u.csv", "a,b\n1,2\n")
    with pytest.raises(KvsimError, match=r"cannot tell the format.*--format"):
        load_trace(unknown)
    with pytest.raises(KvsimError, match="unknown trace format 'parquet'"):
        read_file(path, "parquet")


def test_an_unknown_name_lists_the_bundled_ones():
    with pytest.raises(KvsimError, match=r"no bundled trace or file named 'nope'.*azure-conv"):
        load_trace("nope")


# --- kvsim's own formats -------------------------------------------------------------------------------------

requests = st.lists(
    st.builds(
        Request,
        request_id=st.integers(0, 2**40),
        arrival_s=st.floats(0, 1e7, allow_nan=False, allow_infinity=False),
        num_prompt_tokens=st.integers(1, 10**6),
        num_output_tokens=st.integers(1, 10**5),
        prefix_block_hashes=st.none()
        | st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=5).map(tuple),
        n=st.integers(1, 8),
        beam_width=st.integers(1, 8),
        session_id=st.none() | st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda r: r.request_id,
)


@pytest.mark.parametrize("to", ["jsonl", "csv"])
@settings(max_examples=40, deadline=None)
@given(reqs=requests)
def test_kvsim_formats_round_trip_every_field_exactly(tmp_path_factory, to, reqs):
    trace = Trace.from_requests(reqs, Provenance(source="test", license="CC0"))
    path = tmp_path_factory.mktemp("rt") / f"t.{to}"
    save_trace(trace, path)
    assert detect_format(path) == f"kvsim-{to}"
    back = read_file(path)
    assert list(back) == list(trace)
    if to == "jsonl":
        assert back.provenance.license == "CC0" and "written from test" in back.provenance.notes


def test_converting_a_real_trace_round_trips(tmp_path):
    trace = load_trace("mooncake-synthetic")
    for to in ("jsonl", "csv"):
        save_trace(trace, tmp_path / f"m.{to}")
        back = load_trace(tmp_path / f"m.{to}")
        assert np.array_equal(back.arrival_s, trace.arrival_s)
        assert back.prefix_block_hashes == trace.prefix_block_hashes
        assert np.array_equal(back.num_prompt_tokens, trace.num_prompt_tokens)


def test_csv_cannot_hold_an_empty_session_id(tmp_path):
    trace = Trace.from_requests([Request(0, 0.0, 1, 1, session_id="")], Provenance(source="t"))
    with pytest.raises(KvsimError, match=r"empty session id.*JSONL"):
        save_trace(trace, tmp_path / "t.csv")
    save_trace(trace, tmp_path / "t.jsonl")
    assert read_file(tmp_path / "t.jsonl")[0].session_id == ""


def test_save_needs_a_known_format(tmp_path):
    trace = load_trace("azure-code")
    with pytest.raises(KvsimError, match="--to jsonl or --to csv"):
        save_trace(trace, tmp_path / "t.parquet")


@pytest.mark.slow
def test_a_million_row_azure_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    num = 1_000_000
    seconds = np.sort(rng.uniform(0, 86_000, num))
    stamps = (np.datetime64("2023-11-16T00:00:00", "ns") + (seconds * 1e9).astype("timedelta64[ns]")).astype(
        str
    )
    body = "\n".join(
        f"{s.replace('T', ' ')[:27]},{p},{o}"
        for s, p, o in zip(stamps, rng.integers(1, 9, num), rng.integers(1, 9, num))
    )
    path = write(tmp_path, "big.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + body + "\n")
    trace = read_file(path)
    assert len(trace) == num
    assert trace.arrival_s[-1] == pytest.approx(seconds[-1] - seconds[0], abs=1e-6)


def test_windows_line_ends_and_a_byte_order_mark_are_read(tmp_path):
    csv_path = tmp_path / "a.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + AZURE.replace("\n", "\r\n").encode())
    assert read_file(csv_path).num_prompt_tokens.tolist() == [10, 374, 396]
    jsonl_path = tmp_path / "m.jsonl"
    jsonl_path.write_bytes(
        b'{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\r\n\r\n'
    )
    assert len(read_file(jsonl_path)) == 1


def test_kvsim_files_without_request_ids_number_requests_by_position(tmp_path):
    """A hand-written kvsim CSV or JSONL may leave request_id out: the requests are numbered 0, 1, ...; a
    JSONL file that gives ids on some lines must give them on all (the line without one is named)."""
    (tmp_path / "t.csv").write_text("arrival_s,num_prompt_tokens,num_output_tokens\n0.0,100,10\n0.5,7,3\n")
    lines = [{"arrival_s": 0.0, "num_prompt_tokens": 100, "num_output_tokens": 10}]
    lines.append({"arrival_s": 0.5, "num_prompt_tokens": 7, "num_output_tokens": 3})
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for name in ("t.csv", "t.jsonl"):
        trace = load_trace(tmp_path / name)
        assert trace.request_id.tolist() == [0, 1] and trace.num_prompt_tokens.tolist() == [100, 7]
        assert trace.arrival_s.tolist() == [0.0, 0.5] and trace.num_output_tokens.tolist() == [10, 3]
    lines[0]["request_id"] = 5
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(KvsimError, match=r"mixed.jsonl, line 2, field 'request_id': missing"):
        load_trace(tmp_path / "mixed.jsonl")
