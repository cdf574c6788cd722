"""Allocator specs: ``name[:policy][:key=value,...]`` <-> frozen config dataclasses, one key per field.

Examples: ``paged``, ``paged:block_size=32,enable_prefix_caching=true``, ``reserved:pow2``,
``vattention:page_size=64KiB,mapping=overlapped``. Sizes accept ``KiB``/``MiB``/``GiB`` suffixes (powers of
1024) or plain bytes. The canonical form (the run label) lists the policy, the keys named in ``always``, and
every other key that differs from its default, in field order, among the keys the spec could set: a value that
kvsim resolved itself (vAttention's ``map_latency_s`` from a measured profile) is not part of the label, which
stays what the user asked for; config.json records every resolved value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from kvsim.errors import KvsimError

_SIZE_SUFFIXES = {"gib": 2**30, "mib": 2**20, "kib": 2**10, "b": 1}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# set on a config built by config_from_options: its fields that came from ``extra`` (resolved by kvsim, not
# written in the spec), which spec_string leaves out of the label
_RESOLVED_FIELDS = "_kvsim_resolved_fields"


def split_spec(spec: str, valid_names: list[str]) -> tuple[str, str | None, dict[str, str]]:
    """``"reserved:pow2"`` -> ``("reserved", "pow2", {})``; ``"paged:block_size=32"`` -> ``("paged", None,
    {"block_size": "32"})``."""
    name, *parts = spec.strip().split(":")
    if name not in valid_names:
        raise KvsimError(f"unknown allocator {name!r} in spec {spec!r}; valid: {', '.join(valid_names)}")
    policy, options = None, {}
    for part in parts:
        if "=" not in part:
            if policy is not None or options:
                raise KvsimError(f"allocator spec {spec!r}: write it as name[:policy][:key=value,...]")
            policy = part.strip()
            continue
        for item in part.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise KvsimError(f"allocator spec {spec!r}: {item!r} is not key=value")
            if key.strip() in options:
                raise KvsimError(f"allocator spec {spec!r}: option {key.strip()!r} is given twice; keep one")
            options[key.strip()] = value.strip()
    return name, policy, options


def parse_size(text: str, what: str) -> int:
    lowered = text.strip().lower()
    number, scale = lowered, 1
    for suffix, suffix_scale in _SIZE_SUFFIXES.items():
        if lowered.endswith(suffix):
            number, scale = lowered[: -len(suffix)], suffix_scale
            break
    try:
        value = float(number) * scale
    except ValueError:
        raise KvsimError(
            f"{what}: {text!r} is not a size; write bytes or a number with KiB/MiB/GiB"
        ) from None
    if not math.isfinite(value):
        raise KvsimError(f"{what}: {text!r} is not a finite size; write bytes or a number with KiB/MiB/GiB")
    if value != int(value):
        raise KvsimError(f"{what}: {text!r} is not a whole number of bytes")
    return int(value)


def format_size(num_bytes: int) -> str:
    for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale and num_bytes % scale == 0:
            return f"{num_bytes // scale}{suffix}"
    return str(num_bytes)


def config_from_options(config_cls: type, name: str, options: dict[str, str], **extra: Any) -> Any:
    """Build ``config_cls`` from string options, converting each by its field's type. Fields listed in the
    class's ``SIZE_FIELDS`` accept size suffixes."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    size_fields = getattr(config_cls, "SIZE_FIELDS", ())
    kwargs = dict(extra)
    for key, text in options.items():
        if key not in fields or key == "policy":
            valid = ", ".join(f for f in fields if f != "policy")
            raise KvsimError(f"allocator {name!r} has no option {key!r}; valid: {valid}")
        kind = str(fields[key].type)
        what = f"allocator {name!r} option {key}"
        if kind.endswith(" | None"):  # an optional field: "none" restores its default, None
            kind = kind.removesuffix(" | None")
            if text.lower() == "none":
                kwargs[key] = None
                continue
        if key in size_fields:
            kwargs[key] = parse_size(text, what)
        elif kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise KvsimError(f"{what}: {text!r} is not true or false")
            kwargs[key] = text.lower() in _TRUE
        elif kind in ("int", "float"):
            try:
                kwargs[key] = int(text) if kind == "int" else float(text)
            except ValueError:
                raise KvsimError(
                    f"{what}: {text!r} is not a{'n integer' if kind == 'int' else ' number'}"
                ) from None
            if not math.isfinite(kwargs[key]):
                raise KvsimError(f"{what}: {text!r} is not a finite number")
        else:
            kwargs[key] = text
    config = config_cls(**kwargs)
    resolved = frozenset(extra) - set(options)
    if resolved:
        object.__setattr__(
            config, _RESOLVED_FIELDS, resolved
        )  # a frozen dataclass: not a field, not compared
    return config


def spec_string(name: str, config: Any, always: tuple[str, ...] = ()) -> str:
    """The canonical spec of a config: policy, the ``always`` keys, and the keys that differ from default, but
    not the values kvsim resolved rather than the spec set (module docstring)."""
    size_fields = getattr(config, "SIZE_FIELDS", ())
    resolved = getattr(config, _RESOLVED_FIELDS, frozenset())
    policy, items = None, []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "policy":
            policy = value
        elif f.name in resolved:
            continue
        elif f.name in always or value != f.default:
            if f.name in size_fields:
                text = format_size(value)
            elif isinstance(value, bool):
                text = str(value).lower()
            else:
                text = f"{value:g}" if isinstance(value, float) else str(value)
            items.append(f"{f.name}={text}")
    parts = [name] + ([policy] if policy else []) + ([",".join(items)] if items else [])
    return ":".join(parts)
