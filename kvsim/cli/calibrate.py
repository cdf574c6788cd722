"""``kvsim calibrate``: profile kernels and GEMMs on a GPU and fit a cost profile (DESIGN §5, §8).

A thin layer over ``kvsim.calibrate.run`` (the same as ``python -m kvsim.calibrate``); torch is imported only
when the command runs.
"""

from __future__ import annotations

import click


@click.command("calibrate")
@click.option(
    "--device",
    default="cuda",
    show_default=True,
    help="cuda (a GPU) or cpu (a smoke run whose profile is marked not representative)",
)
@click.option("--model", default="llama-3-8b", show_default=True, help="preset whose shapes to profile")
@click.option(
    "--tp", default="1", show_default=True, help="TP degrees whose per-shard GEMMs to profile, e.g. 1,2,4"
)
@click.option("--out", default=None, help="output folder [default: . , or the CSV's folder with --fit-only]")
@click.option(
    "--budget-s",
    type=float,
    default=240.0,
    show_default=True,
    help="seconds of sweeping; the grid is thinned to fit rather than overrun",
)
@click.option(
    "--impl",
    type=click.Choice(["triton", "reference"]),
    default=None,
    help="attention kernels: triton (default on GPU) or the torch references (default on CPU)",
)
@click.option(
    "--fit-only",
    "fit_only_csv",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="MEASUREMENTS.csv",
    help="refit a profile from a raw measurements CSV, without a GPU",
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option(
    "--no-layers",
    is_flag=True,
    help="skip timing whole decoder layers (the launch overlap and the profile's check against them)",
)
@click.option("--seed", type=int, default=0, show_default=True)
def calibrate(device, model, tp, out, budget_s, impl, fit_only_csv, no_progress, no_layers, seed) -> None:
    """Measure attention kernels, GEMMs and VMM page mapping on this GPU; fit and write a profile.

    Then times whole decoder layers of the model against their kernels timed alone: the profile takes the
    launch overlap they show, and step_validation-<gpu>.csv compares the layers with its predictions.
    Writes profile-<gpu>.json, measurements-<gpu>.csv and step_validation-<gpu>.csv into --out. Use the
    profile with `kvsim simulate --profile PATH`, or commit it under calibrate/profiles/ so --gpu picks it up.
    """
    from kvsim.calibrate.__main__ import run

    click.echo(
        run(device, model, tp, out, budget_s, impl, fit_only_csv, not no_progress, seed, not no_layers)
    )
