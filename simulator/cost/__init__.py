"""Cost models: the ``CostModel`` Protocol and its profile-backed implementations (DESIGN §5)."""

from kvsim.simulator.cost.base import CostModel

__all__ = ["CostModel"]
