"""Simulator tests import their helpers from ``simtools`` (this folder, put on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
