"""A progress bar that needs nothing: tqdm when importable, else one carriage-returned line on stderr.

The GPU machine has no tqdm, and a calibration run must not fail for the want of a progress bar.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "decode") as bar: bar.update()``; ``total`` may shrink when a budget runs out."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.total, self.desc, self.count, self.enabled = total, desc, 0, enabled
        self._start = time.perf_counter()
        self._tqdm = None
        self._closed = False
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(total=total, desc=desc, leave=True, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self.enabled:
            elapsed = time.perf_counter() - self._start
            sys.stderr.write(f"\r{self.desc}: {self.count}/{self.total} points, {elapsed:.0f} s")
            sys.stderr.flush()

    def close(self, note: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        if self._tqdm is not None:
            if note:
                self._tqdm.set_postfix_str(note)
            self._tqdm.close()
        elif self.enabled:
            sys.stderr.write(
                f"\r{self.desc}: {self.count}/{self.total} points{', ' + note if note else ''}\n"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
