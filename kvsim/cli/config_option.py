"""``--config FILE`` for a click command (DESIGN §7: config files mirror the options one to one).

The file is TOML or YAML (``kvsim.config_file``). Its keys are the command's long option names with
underscores for dashes (``num_requests``, ``target_rate``), its values what the options take; a repeatable
option takes a list (or one value), and a repeatable ``FIELD=VALUE`` option (``--slo``, ``--set``,
``--grid``, ``--price``) also a table (``slo = {ttft_p99 = "2s"}``; a grid field's list of values is joined
as ``--grid`` writes it). The command line wins over the file: the file fills click's ``default_map``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kvsim.errors import KvsimError


def config_option(func):
    """Add ``--config FILE`` to a click command (put it first, above the command's options)."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        is_eager=True,
        expose_value=False,
        callback=_load,
        help="TOML or YAML (.yaml, .yml) file whose keys mirror these options; the command line wins.",
    )(func)


def _load(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    if path is None:
        return
    from kvsim.config_file import read_config_file

    data = read_config_file(path)
    options = {}
    for option in ctx.command.params:
        if isinstance(option, click.Option) and option is not param:
            long = next(o for o in option.opts if o.startswith("--"))
            options[long[2:].replace("-", "_")] = option
    unknown = sorted(set(data) - set(options))
    if unknown:
        raise KvsimError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(options))}"
        )
    defaults = {options[key].name: _value(options[key], key, value, path) for key, value in data.items()}
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _value(option: click.Option, key: str, value: Any, path: Path) -> Any:
    if not option.multiple:
        if isinstance(value, (dict, list)):
            raise KvsimError(f"{path}: {key} takes one value, not {value!r}")
        return value
    if isinstance(value, dict):  # FIELD=VALUE options: one per entry
        if option.metavar is None or "=" not in option.metavar:
            raise KvsimError(f"{path}: {key} takes a list of values, not a table")
        return [f"{field}={_joined(item)}" for field, item in value.items()]
    return list(value) if isinstance(value, list) else [value]


def _joined(item: Any) -> str:
    """A table entry's value as the option writes it: a list as V1,V2 (V1;V2 when a value holds a comma)."""
    if not isinstance(item, list):
        return str(item)
    texts = [str(v) for v in item]
    return (";" if any("," in text for text in texts) else ",").join(texts)
