"""``python -m kvsim.calibrate``: the same as ``kvsim calibrate``, with nothing beyond torch, numpy and scipy
(the GPU script calls exactly this; the GPU machine has no simpy, plotly, tqdm or hypothesis)."""

from __future__ import annotations

import argparse
import sys

from kvsim.errors import KvsimError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvsim.calibrate", description=__doc__)
    parser.add_argument(
        "--device", default="cuda", help="cuda (a GPU) or cpu (a smoke run, not representative)"
    )
    parser.add_argument(
        "--model", default="llama-3-8b", help="preset whose attention and GEMM shapes to profile"
    )
    parser.add_argument("--tp", default="1", help="TP degrees whose per-shard GEMMs to profile, e.g. 1,2,4")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for profile-<gpu>.json and measurements-<gpu>.csv (default: ., or the CSV's folder "
        "with --fit-only)",
    )
    parser.add_argument(
        "--budget-s", type=float, default=240.0, help="seconds of sweeping; the grid shrinks to fit"
    )
    parser.add_argument(
        "--impl",
        choices=("triton", "reference"),
        default=None,
        help="attention kernels: triton (default on GPU) or the torch references (default on CPU)",
    )
    parser.add_argument(
        "--fit-only",
        metavar="MEASUREMENTS_CSV",
        default=None,
        help="refit a profile from a raw measurements CSV, without a GPU",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-layers",
        action="store_true",
        help="skip timing whole decoder layers (the launch overlap and the profile's check against them)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = run(
            args.device,
            args.model,
            args.tp,
            args.out,
            args.budget_s,
            args.impl,
            args.fit_only,
            not args.no_progress,
            args.seed,
            not args.no_layers,
        )
    except KvsimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(result)
    return 0


def run(
    device: str,
    model: str,
    tp: str,
    out: str | None,
    budget_s: float,
    impl: str | None,
    fit_only_csv: str | None,
    show_progress: bool,
    seed: int,
    layers: bool = True,
) -> str:
    """Shared by this entry point and ``kvsim calibrate``; returns the summary to print."""
    from kvsim.calibrate.run import calibrate, fit_only, summary

    if fit_only_csv is not None:
        return summary(fit_only(fit_only_csv, out, seed))
    if not (isinstance(budget_s, (int, float)) and 0 < budget_s < float("inf")):
        raise KvsimError(f"--budget-s must be a positive number of seconds, got {budget_s!r}")
    try:
        tps = tuple(int(t) for t in str(tp).split(","))
    except ValueError:
        raise KvsimError(f"--tp must be integers separated by commas, e.g. 1,2,4; got {tp!r}") from None
    return summary(calibrate(device, model, out or ".", budget_s, tps, impl, show_progress, seed, layers))


if __name__ == "__main__":
    sys.exit(main())
