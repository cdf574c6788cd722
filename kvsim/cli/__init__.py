"""The ``kvsim`` command line: a thin layer over the Python API.

Subcommands live one per module in this package and are imported only when used, so ``kvsim --help``
stays fast and never imports torch or triton.
"""

import importlib
import importlib.util
import sys

import click

from kvsim.errors import KvsimError

# command name -> "module:attribute" of its click command. A command whose module is absent is not listed.
COMMANDS = {
    "traces": "kvsim.cli.traces:traces",
    "simulate": "kvsim.cli.simulate:simulate",
    "reproduce": "kvsim.cli.reproduce:reproduce",
    "sweep": "kvsim.cli.sweep:sweep",
    "plan": "kvsim.cli.plan:plan",
    "calibrate": "kvsim.cli.calibrate:calibrate",
    "report": "kvsim.cli.report:report",
    "conformance": "kvsim.cli.conformance:conformance",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, target in COMMANDS.items() if _module_exists(target.split(":")[0])]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target.split(":")[0]):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KvsimError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvsim")
def main() -> None:
    """kvsim: simulate LLM serving to compare KV-cache allocators and schedulers and plan capacity."""
