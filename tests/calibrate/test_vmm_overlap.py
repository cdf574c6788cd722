"""calibrate.vmm_overlap: the verdict from samples (CPU), its command without a GPU, and a short real run (gpu)."""

from __future__ import annotations

import pytest

from kvsim.calibrate.vmm_overlap import LAUNCHES, main, measure, summarize, summarize_contention


def _samples(map_busy_s=35e-6, unmap_busy_s=26e-6, gpu_busy_s=0.040, busy_after=True):
    return {
        "gpu_alone_s": [0.040, 0.0401, 0.0399],
        "gpu_busy_s": [gpu_busy_s] * 3,
        "map_idle_s": [34e-6, 35e-6, 36e-6, 35e-6],
        "unmap_idle_s": [25e-6, 26e-6, 27e-6, 26e-6],
        "map_busy_s": [map_busy_s] * 4,
        "unmap_busy_s": [unmap_busy_s] * 4,
        "busy_after": [busy_after] * 8,
    }


def test_calls_as_fast_beside_the_gpu_and_an_unslowed_queue_hide_the_mapping():
    out = summarize(_samples())
    assert out["map_idle_us"]["p50"] == 35.0 and out["map_busy_us"]["p50"] == 35.0
    assert out["unmap_idle_us"]["p50"] == 26.0
    assert out["gpu_alone_ms"] == 40.0 and out["gpu_slowdown"] == 1.0
    assert out["busy_fraction"] == 1.0 and out["map_ratio"] == 1.0
    assert out["hides_mapping"] is True


@pytest.mark.parametrize(
    "change",
    [
        {"map_busy_s": 0.012},  # a map that waited for the queue (an implicit synchronization)
        {"unmap_busy_s": 0.012},
        {"gpu_busy_s": 0.044},  # the queue slowed by 10% while the pages were mapped
        {"busy_after": False},  # every call returned after the queue: nothing was measured beside the GPU
    ],
)
def test_a_stall_a_slowed_queue_or_no_overlap_at_all_does_not_hide_it(change):
    assert summarize(_samples(**change))["hides_mapping"] is False


def test_a_slowdown_within_the_queues_own_spread_alone_is_noise():
    samples = _samples(gpu_busy_s=0.0412)  # x1.03 > MAX_GPU_SLOWDOWN
    assert summarize(samples)["hides_mapping"] is False  # the queue alone spread 0.5%
    samples["gpu_alone_s"] = [0.039, 0.040, 0.041]  # 5% apart alone
    out = summarize(samples)
    assert out["gpu_alone_spread"] == 0.05 and out["gpu_slowdown"] == 1.03 and out["hides_mapping"] is True
    assert out["gpu_alone_ms_runs"] == [39.0, 40.0, 41.0] and out["gpu_busy_ms_runs"] == [41.2] * 3


def test_calls_slower_beside_the_work_but_far_from_waiting_for_it_still_hide():
    out = summarize(_samples(map_busy_s=70e-6, unmap_busy_s=52e-6))  # twice as long as idle
    assert out["map_ratio"] == 2.0 and out["unmap_ratio"] == 2.0 and out["hides_mapping"] is True
    assert out["map_busy_us"] == {"p50": 70.0, "p90": 70.0, "max": 70.0}
    assert out["longest_busy_call_of_queue"] == 0.00175


def test_launch_contention_in_microseconds_per_launch_and_ratios():
    out = summarize_contention(
        {
            "launch_alone_s": [LAUNCHES * 5e-6, LAUNCHES * 6e-6, LAUNCHES * 5e-6],
            "launch_busy_s": [LAUNCHES * 7.5e-6] * 3,
            "launch_control_s": [LAUNCHES * 6e-6] * 3,
            "map_thread_s": [40e-6, 42e-6, 44e-6],
            "map_idle_s": [35e-6, 35e-6],
        }
    )
    assert out["launch_us_alone"] == 5.0 and out["launch_us_with_mapping_thread"] == 7.5
    assert out["launch_slowdown"] == 1.5 and out["map_us_thread"] == 42.0 and out["map_thread_ratio"] == 1.2
    assert out["map_calls_beside_launches"] == 3 and out["launch_slowdown_control"] == 1.2
    with pytest.raises(ValueError, match="no map_thread_s samples"):
        summarize_contention(
            {"launch_alone_s": [1.0], "launch_busy_s": [1.0], "launch_control_s": [1.0], "map_thread_s": []}
        )


def test_missing_samples_are_an_error_naming_them():
    samples = _samples()
    samples["map_busy_s"] = []
    with pytest.raises(ValueError, match="no map_busy_s samples"):
        summarize(samples)


def test_the_command_without_a_gpu_says_so(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["--out", str(tmp_path / "o.json")]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("flag", ["--pages", "--repeats", "--gpu-ms"])
def test_a_count_or_time_that_is_not_positive_is_an_error_naming_it(tmp_path, capsys, flag):
    assert main(["--out", str(tmp_path / "o.json"), flag, "0"]) == 2
    assert f"{flag} must be positive, got 0" in capsys.readouterr().err


@pytest.mark.gpu
def test_a_short_run_maps_beside_a_busy_gpu():
    out = measure(pages=8, repeats=1, gpu_ms=20.0)
    assert set(out["workloads"]) == {"copy", "gemm"}
    for w in out["workloads"].values():
        assert w["kernels_per_queue"] >= 1 and w["gpu_alone_ms"] > 0
        assert w["busy_fraction"] > 0  # some calls did return while the queue ran
    contention = out["launch_contention"]
    assert contention["launch_us_alone"] > 0 and contention["map_calls_beside_launches"] > 0
