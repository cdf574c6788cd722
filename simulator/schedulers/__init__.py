"""Scheduling policies behind the ``Scheduler`` Protocol, one file each, registered by name (DESIGN §4)."""

from kvsim.simulator.schedulers.base import SchedulerBase
from kvsim.simulator.schedulers.orca import OrcaScheduler
from kvsim.simulator.schedulers.protocol import Scheduler
from kvsim.simulator.schedulers.static import StaticScheduler
from kvsim.simulator.schedulers.tgi import TgiScheduler
from kvsim.simulator.schedulers.vllm import VllmScheduler

SCHEDULERS: dict[str, type[SchedulerBase]] = {
    "vllm": VllmScheduler,
    "orca": OrcaScheduler,
    "static": StaticScheduler,
    "tgi": TgiScheduler,
}

__all__ = [
    "SCHEDULERS",
    "OrcaScheduler",
    "Scheduler",
    "SchedulerBase",
    "StaticScheduler",
    "TgiScheduler",
    "VllmScheduler",
]
