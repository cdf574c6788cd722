"""Let the allocator tests import their helper module (pytest runs in importlib mode, which adds no paths)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from allocator_ops import KV_BYTES_PER_TOKEN, TINY


@pytest.fixture(scope="session")
def tiny_model():
    assert TINY.kv_bytes_per_token(1) == KV_BYTES_PER_TOKEN
    return TINY
