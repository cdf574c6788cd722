"""kvsim.traces: request traces (real and synthetic), loaders, generators and transforms (DESIGN §2)."""

from kvsim.traces.request import PREFIX_BLOCK_TOKENS, Provenance, Request, Trace

__all__ = ["PREFIX_BLOCK_TOKENS", "Provenance", "Request", "Trace"]
