"""``--config FILE`` for a click command (DESIGN §7: config files mirror the options one to one).

The file is TOML or YAML (``kvsim.config_file``). Its keys are the command's long option names with
underscores for dashes (``num_requests``, ``target_rate``), its values what the options take; a repeatable
option takes a list (or one value), and a repeatable ``FIELD=VALUE`` option (``--slo``, ``--set``,
``--grid``, ``--price``) also a table (``slo = {ttft_p99 = "2s"}``; a grid field's list of values is joined
as ``--grid`` writes it). The command line wins over the file: the file fills click's ``default_map``.

Values are checked as strictly as the command line reads them (``checked_value``): an integer option takes an
integer (not ``true``, ``2.5`` or ``"100"``), a number option a number, a flag ``true`` or ``false``, a path
option text, and a text option text (a number is taken as the text it would be on the command line).
``kvsim simulate --config`` uses the same check.
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
    options = {key: option for key, option in options_by_key(ctx.command).items() if option is not param}
    unknown = sorted(set(data) - set(options))
    if unknown:
        raise KvsimError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(options))}")
    defaults = {options[key].name: _value(options[key], key, value, path) for key, value in data.items()}
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def options_by_key(command: click.Command) -> dict[str, click.Option]:
    """A command's options by config-file key: the long name with underscores (``--num-requests`` ->
    ``num_requests``)."""
    options = {}
    for option in command.params:
        if isinstance(option, click.Option):
            long = next((o for o in option.opts if o.startswith("--")), None)
            if long is not None:
                options[long[2:].replace("-", "_")] = option
    return options


def checked_value(option: click.Option, key: str, value: Any, where: Path | str) -> Any:
    """``value`` of config key ``key`` for ``option``, type-checked as the command line would read it: one value,
    or a list of them for a repeatable option. A ``KvsimError`` names the file, the key and what it takes."""
    if not option.multiple:
        if isinstance(value, (dict, list)):
            raise KvsimError(f"{where}: {key} takes one value, not {value!r}")
        return _scalar(option, key, value, where)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise KvsimError(f"{where}: {key} is an empty list; give at least one value, or leave the key out")
    return [_scalar(option, key, item, where) for item in values]


_KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "path": "a path (text in quotes)",
}


def _scalar(option: click.Option, key: str, value: Any, where: Path | str) -> Any:
    if option.is_bool_flag or isinstance(option.type, click.types.BoolParamType):
        kind, ok = "bool", isinstance(value, bool)
    elif isinstance(option.type, click.types.IntParamType):
        kind, ok = "int", isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(option.type, click.types.FloatParamType):
        kind, ok = "float", isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(option.type, click.Path):
        kind, ok = "path", isinstance(value, str)
    else:  # text or a choice: a number is the text the command line would read
        kind, ok = "str", isinstance(value, str)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    if not ok:
        hint = "; write it without quotes" if isinstance(value, str) else ""
        if isinstance(value, list):
            hint = "; it takes one value"
        raise KvsimError(
            f"{where}: config key {key} must be {_KIND_NAMES[kind]}, got {value!r} ({type(value).__name__}){hint}"
        )
    return value


def _value(option: click.Option, key: str, value: Any, path: Path) -> Any:
    if option.multiple and isinstance(value, dict):  # FIELD=VALUE options: one per entry
        if option.metavar is None or "=" not in option.metavar:
            raise KvsimError(f"{path}: {key} takes a list of values, not a table")
        return [f"{field}={_joined(item)}" for field, item in value.items()]
    return checked_value(option, key, value, path)


def _joined(item: Any) -> str:
    """A table entry's value as the option writes it: a list as V1,V2 (V1;V2 when a value holds a comma)."""
    if not isinstance(item, list):
        return str(item)
    texts = [str(v) for v in item]
    return (";" if any("," in text for text in texts) else ",").join(texts)
