"""The run folder's CSV files are written column by column (``outputs.write_csv``) with the very bytes
``csv.writer`` gives, and read back to the same values (docs/outputs.md)."""

from __future__ import annotations

import csv
import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from simtools import KV_BYTES_PER_TOKEN, random_trace

from kvsim.simulator import SimConfig, simulate
from kvsim.simulator.outputs import (
    REQUEST_COLUMNS,
    csv_field,
    float_cells,
    int_cells,
    text_cells,
    write_csv,
)


def csv_writer_bytes(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@given(st.lists(st.text(alphabet=st.sampled_from('ab ,"\n\r\t;x'), min_size=1, max_size=8), max_size=30))
def test_text_cells_are_quoted_as_csv_writer_quotes_them(texts):
    assert [csv_field(text) for text in texts] == [csv_writer_bytes((text, ""), [])[:-2] for text in texts]


def test_write_csv_writes_what_csv_writer_writes(tmp_path):
    rng = np.random.default_rng(0)
    floats = rng.normal(size=200_003)  # more rows than one chunk
    floats[::7] = np.nan
    ints = rng.integers(-5, 10**12, size=200_003)
    reasons = ["", "too long, by far", 'say "no"', "two\nlines"] * 50_000 + ["", "", ""]
    path = tmp_path / "x.csv"
    write_csv(
        path,
        ("a", "b,c", "reason"),
        [(floats, float_cells), (ints, int_cells), ([csv_field(r) for r in reasons], text_cells)],
    )
    rows = zip(("" if np.isnan(x) else repr(x) for x in floats.tolist()), ints.tolist(), reasons)
    assert path.read_text(encoding="utf-8") == csv_writer_bytes(("a", "b,c", "reason"), rows)
    write_csv(path, ("a", "b"), [(np.empty(0), float_cells), (np.empty(0, np.int64), int_cells)])
    assert path.read_text(encoding="utf-8") == "a,b\n"  # no rows: the header alone


def test_requests_csv_reads_back_to_the_recorded_values(tmp_path):
    trace = random_trace(60, seed=2, rate_per_s=20.0)
    config = SimConfig(scheduler="vllm-v0", kv_capacity_bytes=1500 * KV_BYTES_PER_TOKEN, max_model_len=400)  # some rejected
    result = simulate(config, trace)
    assert result.summary["num_rejected"] > 0
    result.write(tmp_path)
    with (tmp_path / "requests.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == REQUEST_COLUMNS and len(rows) == len(trace)
    rec = result.recorder
    for i, row in enumerate(rows):
        assert row["rejected_reason"] == rec.rejected_reason.get(i, "")
        assert float(row["arrival_s"]) == trace.arrival_s[i]
        finish = rec.finish_s[i]
        assert (row["finish_s"] == "") if np.isnan(finish) else float(row["finish_s"]) == finish
        assert row["replica"] == ("" if rec.replica[i] < 0 else str(rec.replica[i]))


def test_config_json_names_every_allocator_option_defaults_included(tmp_path):
    import json

    from simtools import make_trace, run

    result = run(make_trace([(0.0, 10, 3)]), allocator="vattention:page_size=64KiB")
    result.write(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["allocator"] == "vattention:page_size=64KiB"  # the spec names what differs from defaults
    assert config["allocator_config"]["mapping"] == "overlapped"
    assert config["allocator_config"]["page_size"] == 64 * 1024 and config["allocator_config"]["reuse_pages"]


def test_config_json_fills_in_contiguous_growths_derived_copy_bandwidth(tmp_path):
    import json

    from simtools import make_trace

    from kvsim.simulator import SimConfig, simulate
    from kvsim.simulator.cost.roofline import HBM_BW_EFFICIENCY
    from kvsim.simulator.specs import GpuSpec

    config = SimConfig(scheduler="vllm-v0", model="llama-2-7b", gpu="a100-80gb", allocator="contiguous-growth")
    result = simulate(config, make_trace([(0.0, 10, 3)]))
    result.write(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    derived = GpuSpec.from_name("a100-80gb").hbm_bw_bytes_per_s * HBM_BW_EFFICIENCY / 2
    assert written["allocator_config"]["copy_bw_bytes_per_s"] == derived
    assert written["allocator"] == "contiguous-growth" and result.summary["label"] == "contiguous-growth"
