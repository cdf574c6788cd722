"""``kvsim conformance vllm``: kvsim's ``vllm`` scheduler against vLLM 0.34.0's real scheduler, step by step.

vLLM runs in its own venv (``scripts/conformance/build_vllm_venv.sh``; ``$KVSIM_VLLM_VENV`` or ``.venv-vllm``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from kvsim.errors import KvsimError


@click.group()
def conformance() -> None:
    """Check kvsim's schedulers against the real ones."""


@conformance.command("vllm")
@click.option("--case", "cases", multiple=True, help="A case (repeatable; default: all). --list shows them.")
@click.option(
    "--list", "list_cases", is_flag=True, help="List the cases (and those not run, with why) and exit."
)
@click.option("--venv", type=click.Path(), help="The vLLM venv (default: $KVSIM_VLLM_VENV, else .venv-vllm).")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Also write every report as JSON here."
)
def vllm(cases: tuple[str, ...], list_cases: bool, venv: str | None, json_out: str | None) -> None:
    """Drive vLLM's v1 Scheduler (CPU, fake model outputs) and kvsim's vllm scheduler (constant step cost, the
    same KV blocks) through the same cases and compare every step: scheduled requests and tokens, preemptions,
    prefix-cached tokens at admission, first-token and finish steps. Prints a table and the first divergent
    step of each case that diverges; exits 1 on any divergence."""
    from kvsim.conformance.cases import NOT_CASES, case_names, make_case
    from kvsim.conformance.compare import divergence_detail, table
    from kvsim.conformance.harness import run_cases
    from kvsim.conformance.vllm_side import missing_venv_message, venv_python

    if list_cases:
        for name in case_names():
            click.echo(name)
        for name, reason in NOT_CASES.items():
            click.echo(f"{name}: not run: {reason}")
        return
    names = list(cases) or None
    for name in names or ():
        make_case(name)  # an unknown name fails before vLLM is started
    python = venv_python(venv)
    if python is None:
        raise KvsimError(missing_venv_message())
    t0 = time.perf_counter()
    reports, timing = run_cases(names, python)
    wall_s = time.perf_counter() - t0
    click.echo(f"vLLM {timing['vllm_version']} (real Scheduler, CPU) vs kvsim --scheduler vllm")
    click.echo(table(reports))
    for report in reports:
        if not report.ok:
            click.echo("")
            click.echo(divergence_detail(report))
    num_bad = sum(not r.ok for r in reports)
    click.echo(
        f"\n{len(reports) - num_bad} of {len(reports)} cases agree step for step; wall {wall_s:.1f} s "
        f"(vLLM driver {timing['vllm_s']:.1f} s, kvsim {timing['kvsim_s']:.1f} s)"
    )
    if json_out:
        Path(json_out).write_text(
            json.dumps(
                {"timing": timing, "wall_s": wall_s, "cases": [r.as_dict() for r in reports]}, indent=1
            )
        )
    if num_bad:
        sys.exit(1)
