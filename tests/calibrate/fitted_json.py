"""Comparing a fitted profile or fits file with the shipped one: everything exact but the floats a fit computes."""

import pytest


def differences(built, shipped, rel, where="$"):
    """Where two JSON-like trees part: keys, strings, ints and None exactly; floats to `rel` (a least-squares fit
    of the same rows gives floats that differ in the last ~10 digits from one CPU's BLAS to another's)."""
    if isinstance(built, float) or isinstance(shipped, float):
        if not isinstance(built, (int, float)) or not isinstance(shipped, (int, float)):
            return [f"{where}: {built!r} != {shipped!r}"]
        return [] if built == pytest.approx(shipped, rel=rel) else [f"{where}: {built!r} != {shipped!r}"]
    if isinstance(built, dict) and isinstance(shipped, dict):
        if built.keys() != shipped.keys():
            return [f"{where}: keys {sorted(built.keys() ^ shipped.keys())} in only one"]
        return [d for k in built for d in differences(built[k], shipped[k], rel, f"{where}.{k}")]
    if isinstance(built, list) and isinstance(shipped, list):
        if len(built) != len(shipped):
            return [f"{where}: {len(built)} items != {len(shipped)}"]
        return [
            d for i, (a, b) in enumerate(zip(built, shipped)) for d in differences(a, b, rel, f"{where}[{i}]")
        ]
    return [] if built == shipped else [f"{where}: {built!r} != {shipped!r}"]
