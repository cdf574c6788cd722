"""Shared parsing for the trace loaders: CSV columns parsed with numpy, and the error format.

Every error is a ``KvsimError`` naming the file, the line number (1-based, counting the header as line 1) and
the field. The fast path converts whole columns at once; only when a conversion fails does the slow path walk
the column to find the first bad line, so a clean million-row file never pays for per-row checks. JSON Lines
helpers are in ``_jsonl.py``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from kvsim.errors import KvsimError


def read_text(path: Path) -> str:
    try:
        # -sig: drop a UTF-8 byte-order mark if there is one; newline="": keep \r inside quoted CSV fields
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise KvsimError(
            f"trace file {str(path)!r} does not exist; give a bundled name or a file path"
        ) from None
    except UnicodeDecodeError as exc:
        raise KvsimError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); give a CSV or JSONL file"
        ) from None
    except OSError as exc:
        raise KvsimError(f"cannot read trace file {str(path)!r}: {exc.strerror}") from None


def bad_field(path: Path, line: int, field: str, problem: str) -> KvsimError:
    return KvsimError(f"{path}, line {line}, field {field!r}: {problem}")


class CsvColumns:
    """The data rows of a CSV file with a header row, read column by column.

    Blank lines are skipped (they hold no request). ``line_of(k)`` maps data row ``k`` to its line in the file,
    computed on demand by re-reading the text, because only error messages need it."""

    def __init__(self, path: Path, text: str, required: list[str]) -> None:
        self.path = path
        self._text = text
        reader = csv.reader(io.StringIO(text, newline=""))
        self.header = self.header_of(path, text)
        next(reader)
        missing = [name for name in required if name not in self.header]
        if missing:
            raise KvsimError(
                f"{path}, line 1: header has no column {missing[0]!r} (header: {','.join(self.header)}); "
                f"expected the columns {','.join(required)}"
            )
        self.rows = [row for row in reader if row]
        if not self.rows:
            raise KvsimError(f"{path} has a header but no requests; give a file with at least one request")
        self._check_widths()

    @staticmethod
    def header_of(path: Path, text: str) -> list[str]:
        """The column names of the header row, stripped."""
        header = next(csv.reader(io.StringIO(text, newline="")), None)
        if header is None or not any(header):
            raise KvsimError(f"{path} is empty; a trace file needs a header line and at least one request")
        return [name.strip() for name in header]

    def __len__(self) -> int:
        return len(self.rows)

    def line_of(self, k: int) -> int:
        reader = csv.reader(io.StringIO(self._text, newline=""))
        next(reader)
        seen = -1
        for row in reader:
            if row:
                seen += 1
                if seen == k:
                    return reader.line_num
        raise AssertionError(f"data row {k} not found")

    def _check_widths(self) -> None:
        width = len(self.header)
        if all(len(row) == width for row in self.rows):
            return
        k = next(k for k, row in enumerate(self.rows) if len(row) != width)
        num_fields = len(self.rows[k])
        if num_fields < width:
            problem = f"missing: the line has {num_fields} fields, the header names {width}"
            raise bad_field(self.path, self.line_of(k), self.header[num_fields], problem)
        raise KvsimError(
            f"{self.path}, line {self.line_of(k)}: {num_fields} fields, but the header names {width} "
            f"({','.join(self.header)}); remove the extra fields or quote values that contain commas"
        )

    def strings(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [row[i] for row in self.rows]

    def ints(self, name: str, *, min_value: int = 1, what: str = "token count") -> np.ndarray:
        """Column ``name`` as int64; every value must be an integer >= ``min_value``."""
        column = self.strings(name)
        try:
            values = np.fromiter(map(int, column), dtype=np.int64, count=len(column))  # int()'s syntax
        except (ValueError, OverflowError):
            k = next(k for k, s in enumerate(column) if not _is_int64(s))
            problem = too_large(column[k].strip()) if _is_int(column[k]) else f"not an integer: {column[k]!r}"
            raise bad_field(self.path, self.line_of(k), name, problem) from None
        self._check_min(name, values, min_value, what)
        return values

    def floats(self, name: str, *, min_value: float | None = 0.0, what: str = "timestamp") -> np.ndarray:
        """Column ``name`` as float64; every value must be finite and >= ``min_value``."""
        column = self.strings(name)
        try:
            values = np.fromiter(map(float, column), dtype=np.float64, count=len(column))  # float()'s syntax
        except ValueError:
            k = next(k for k, s in enumerate(column) if not _is_float(s))
            raise bad_field(
                self.path, self.line_of(k), name, f"bad {what}: not a number: {column[k]!r}"
            ) from None
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            k = int(bad[0])
            raise bad_field(self.path, self.line_of(k), name, f"bad {what}: not finite: {column[k]!r}")
        if min_value is not None:
            self._check_min(name, values, min_value, what)
        return values

    def datetimes_s(self, name: str) -> np.ndarray:
        """Column ``name`` of wall-clock times (``YYYY-MM-DD hh:mm:ss.fffffff``, any number of fractional
        digits up to 9) as float64 seconds from the earliest one. numpy parses to the nanosecond, which keeps
        Azure's 7 fractional digits that ``datetime.strptime("%f")`` rejects."""
        column = self.strings(name)
        try:
            stamps = np.array(column).astype("datetime64[ns]")
        except ValueError:
            k = next(k for k, s in enumerate(column) if not _is_datetime(s))
            raise bad_field(self.path, self.line_of(k), name, f"bad timestamp: {column[k]!r}") from None
        bad = np.flatnonzero(np.isnat(stamps))
        if len(bad):
            k = int(bad[0])
            raise bad_field(self.path, self.line_of(k), name, f"bad timestamp: {column[k]!r}")
        ns = stamps.astype(np.int64)
        return (ns - ns.min()) / 1e9

    def _check_min(self, name: str, values: np.ndarray, min_value: float, what: str) -> None:
        bad = np.flatnonzero(values < min_value)
        if len(bad):
            k = int(bad[0])
            problem = f"{what} must be >= {min_value}, got {self.rows[k][self.header.index(name)].strip()}"
            raise bad_field(self.path, self.line_of(k), name, problem)


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def fits_int64(value: int) -> bool:
    return -(2**63) <= value < 2**63


def too_large(text: str) -> str:
    return f"{text} is too large: counts and ids must fit in a 64-bit integer"


def _is_int64(s: str) -> bool:
    return _is_int(s) and fits_int64(int(s))


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_datetime(s: str) -> bool:
    try:
        np.datetime64(s.strip(), "ns")
    except ValueError:
        return False
    return True
