"""Let the sweep tests import their helper module (pytest runs in importlib mode, which adds no paths)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
