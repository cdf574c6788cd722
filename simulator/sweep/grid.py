"""A sweep grid: named fields, each with a list of values, expanded into points (their Cartesian product).

Grammar of one ``--grid`` option (the TOML ``[grid]`` table says the same with lists)::

    FIELD=VALUES
    VALUES := VALUE (SEP VALUE)*    SEP is ';' when VALUES contains a ';', else ','
    VALUE  := START:STOP:STEP       three numbers: START, START+STEP, ... up to STOP inclusive
            | LITERAL               int, float, true/false, or a string kept as written

So ``allocator=paged,reserved:pow2,vattention`` is three allocators (``reserved:pow2`` is not a range: its
parts are not numbers), and an allocator spec that itself holds commas is written with ';' between values:
``allocator=paged:block_size=16,enable_prefix_caching=true;vattention:page_size=64KiB``. Repeating ``--grid``
for the same field appends values. Fields keep the order they were first given; the last field varies fastest.

Tied fields vary together: ``allocator+scheduler=paged+vllm,reserved:max+orca`` is two points, each setting
both fields (each part parsed as a literal), for settings that only make sense in pairs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kvsim.errors import KvsimError

Value = int | float | bool | str

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_FIELD_RE = re.compile(rf"^{_NAME}(\+{_NAME})*$")  # one field, or tied fields joined by '+'
_INT_RE = re.compile(r"^[+-]?\d+$")
_MAX_RANGE_POINTS = 100_000  # a typo like 1:1000000:1 should fail loudly, not fill the disk


def parse_value(text: str) -> Value:
    """A literal as written on the command line: int, float, bool, or the string itself."""
    text = text.strip()
    if _INT_RE.match(text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number if text.lower() not in ("nan", "inf", "+inf", "-inf", "infinity") else text


def expand_range(text: str) -> list[Value] | None:
    """``START:STOP:STEP`` -> the values from START to STOP inclusive; None when ``text`` is not a range.

    Decimal arithmetic, so ``1:10:0.5`` gives exactly 1.0, 1.5, ..., 10.0 (no 9.999999999999998)."""
    parts = text.split(":")
    if len(parts) != 3:
        return None
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        return None
    if not all(d.is_finite() for d in (start, stop, step)):
        return None
    if step <= 0 or stop < start:
        raise KvsimError(
            f"range {text!r}: need START <= STOP and STEP > 0 (write START:STOP:STEP, e.g. 1:10:0.5)"
        )
    count = int((stop - start) / step) + 1
    if count > _MAX_RANGE_POINTS:
        raise KvsimError(f"range {text!r} has {count} values (limit {_MAX_RANGE_POINTS}); use a larger STEP")
    is_int = all(_INT_RE.match(p.strip()) for p in parts)
    values = [start + i * step for i in range(count)]
    return [int(v) for v in values] if is_int else [float(v) for v in values]


def parse_grid_option(option: str) -> tuple[str, list[Value]]:
    """One ``--grid FIELD=VALUES`` option -> (field, values)."""
    field, sep, values_text = option.partition("=")
    field = field.strip()
    if not sep or not _FIELD_RE.match(field):
        raise KvsimError(
            f"--grid {option!r}: write FIELD=V1,V2 (e.g. rate=1:10:0.5 or allocator=paged,vattention)"
        )
    if not values_text.strip():
        raise KvsimError(f"--grid {option!r}: no values after '='")
    separator = ";" if ";" in values_text else ","
    values: list[Value] = []
    for item in values_text.split(separator):
        if not item.strip():
            raise KvsimError(f"--grid {option!r}: empty value between {separator!r} separators")
        if "+" in field:  # tied fields: kept as written, split into parts when points are made
            values.append(item.strip())
            continue
        expanded = expand_range(item)
        values.extend(expanded if expanded is not None else [parse_value(item)])
    return field, values


@dataclass(frozen=True)
class Grid:
    """Swept fields in order, each with its values. Invariant: no field twice, no value twice in a field."""

    fields: tuple[tuple[str, tuple[Value, ...]], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.fields]
        for name, values in self.fields:
            if names.count(name) > 1:
                raise KvsimError(f"grid field {name!r} given twice; merge its values into one list")
            if not values:
                raise KvsimError(f"grid field {name!r} has no values")
            keys = [canonical_json(v) for v in values]
            duplicates = sorted({k for k in keys if keys.count(k) > 1})
            if duplicates:
                raise KvsimError(
                    f"grid field {name!r} lists {', '.join(duplicates)} more than once; drop the repeats"
                )
            for value in values:
                _tied_values(name, value)  # raises on a value with the wrong number of parts
        flat = self.names
        repeated = sorted({n for n in flat if flat.count(n) > 1})
        if repeated:
            raise KvsimError(f"grid field(s) {', '.join(repeated)} appear both alone and tied; keep one")

    @classmethod
    def from_options(cls, options: Iterable[str]) -> Grid:
        """From repeated ``--grid`` options; a field given again appends its values."""
        field_to_values: dict[str, list[Value]] = {}
        for option in options:
            field, values = parse_grid_option(option)
            field_to_values.setdefault(field, []).extend(values)
        return cls(tuple((f, tuple(v)) for f, v in field_to_values.items()))

    @classmethod
    def from_mapping(cls, table: Mapping[str, object], *, where: str = "[grid]") -> Grid:
        """From a TOML ``[grid]`` table: each value a list, a range string ``"1:10:0.5"``, or one scalar."""
        fields = []
        for field, raw in table.items():
            if not _FIELD_RE.match(field):
                raise KvsimError(f"{where}: {field!r} is not a field name")
            items = raw if isinstance(raw, list) else [raw]
            values: list[Value] = []
            for item in items:
                if (
                    isinstance(item, str)
                    and "+" not in field
                    and (expanded := expand_range(item)) is not None
                ):
                    values.extend(expanded)
                elif isinstance(item, (bool, int, float, str)):
                    values.append(item)
                else:
                    raise KvsimError(f"{where}.{field}: {item!r} is not a number, bool or string")
            fields.append((field, tuple(values)))
        return cls(tuple(fields))

    def merged(self, other: Grid) -> Grid:
        """This grid with ``other``'s fields appended (a field in both is an error, as in one grid)."""
        return Grid(self.fields + other.fields)

    @property
    def names(self) -> tuple[str, ...]:
        """The config fields the grid sets, tied ones split apart, in order."""
        return tuple(part for name, _ in self.fields for part in name.split("+"))

    def __len__(self) -> int:
        count = 1
        for _, values in self.fields:
            count *= len(values)
        return count

    def points(self) -> list[dict[str, Value]]:
        """Every combination, last field fastest (itertools.product order)."""
        value_lists = [values for _, values in self.fields]
        points = []
        for combo in itertools.product(*value_lists):
            point: dict[str, Value] = {}
            for (name, _), value in zip(self.fields, combo, strict=True):
                point.update(_tied_values(name, value))
            points.append(point)
        return points


def _tied_values(name: str, value: Value) -> dict[str, Value]:
    """``("a+b", "1+x")`` -> ``{"a": 1, "b": "x"}``; a plain field maps to its value."""
    if "+" not in name:
        return {name: value}
    names = name.split("+")
    parts = value.split("+") if isinstance(value, str) else [value]
    if len(parts) != len(names):
        raise KvsimError(
            f"tied grid field {name!r}: value {value!r} needs {len(names)} parts joined by '+', "
            f"e.g. {'+'.join(f'<{n}>' for n in names)}"
        )
    return {n: parse_value(p) for n, p in zip(names, parts, strict=True)}


def canonical_json(obj: object) -> str:
    """One spelling per value: sorted keys, no spaces. Distinguishes 1 from 1.0 and "1" (types matter)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_id(config: Mapping[str, Value]) -> str:
    """A short stable name for a point's full configuration: 12 hex digits of its SHA-256."""
    return hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:12]


def point_seed(sweep_seed: int, seed_fields: Mapping[str, Value]) -> int:
    """A point's seed from the sweep seed and the point's own values (never its position or run order).

    ``seed_fields`` is the part of the point that picks the sample of requests; points that agree on it
    get the same seed, so they see the same request stream (common random numbers)."""
    digest = hashlib.sha256(canonical_json([sweep_seed, dict(seed_fields)]).encode()).digest()
    return int.from_bytes(digest[:4], "big")  # 32 bits: fits numpy's SeedSequence and every int column
