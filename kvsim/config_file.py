"""Config files, TOML or YAML, read into a plain mapping (DESIGN §7: their keys mirror the CLI's options).

The format comes from the suffix: ``.yaml`` or ``.yml`` is YAML, anything else TOML. YAML is read as YAML 1.1
(PyYAML's safe loader) with two changes: no base-60 numbers, so that a sweep range such as ``rate: 1:10:1``
stays the string it reads as rather than becoming 3661; and YAML 1.2's exponents (``1e9``, ``1.5e3``), which
1.1 reads as text, are numbers.
"""

from __future__ import annotations

import functools
import io
import re
import sys
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError

YAML_SUFFIXES = (".yaml", ".yml")


def read_config_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The top-level mapping of a TOML or YAML file; a ``KvsimError`` naming ``what`` and the file when it is
    missing, does not parse, or is not a mapping of names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KvsimError(f"{what} {path}: not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KvsimError(f"{what} {path}: cannot be read ({exc})") from exc
    data = (
        _parse_yaml(text, path, what)
        if path.suffix.lower() in YAML_SUFFIXES
        else _parse_toml(text, path, what)
    )
    if data is None:  # an empty YAML file
        data = {}
    if not isinstance(data, dict):
        raise KvsimError(
            f"{what} {path}: the top level must be a mapping of keys, not a {type(data).__name__}"
        )
    names = [key for key in data if not isinstance(key, str)]
    if names:
        raise KvsimError(f"{what} {path}: keys must be names, not {names[0]!r}")
    return data


def _parse_toml(text: str, path: Path, what: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - setup.py installs tomli on 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = (
            ""
            if path.suffix.lower() == ".toml"
            else f" (a YAML file needs the suffix {' or '.join(YAML_SUFFIXES)})"
        )
        raise KvsimError(f"{what} {path}: not valid TOML ({exc}){hint}") from exc


def _parse_yaml(text: str, path: Path, what: str) -> Any:
    import yaml

    stream = io.StringIO(text)
    stream.name = str(path)  # named in the parser's messages
    try:
        return yaml.load(stream, Loader=_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:  # PyYAML's message spans lines: one line, with where it went wrong
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise KvsimError(f"{what} {path}: not valid YAML at {where}{problem}") from exc
    except yaml.YAMLError as exc:
        raise KvsimError(f"{what} {path}: not valid YAML ({' '.join(str(exc).split())})") from exc


@functools.cache
def _loader():
    """``yaml.SafeLoader`` whose ints and floats with ':' (YAML 1.1's base 60) stay strings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def number_or_text(construct):
        def constructor(loader, node):
            if ":" in node.value:
                return loader.construct_scalar(node)
            return construct(loader, node)

        return constructor

    Loader.add_constructor("tag:yaml.org,2002:int", number_or_text(yaml.SafeLoader.construct_yaml_int))
    Loader.add_constructor("tag:yaml.org,2002:float", number_or_text(yaml.SafeLoader.construct_yaml_float))
    # YAML 1.2's exponents without a dot or sign (1e9, 1.5e3), which 1.1 reads as text
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
        list("-+.0123456789"),
    )
    return Loader
