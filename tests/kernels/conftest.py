"""Kernel tests import their shared inputs from kernel_cases.py beside them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
