"""Scheduling policies behind the ``Scheduler`` Protocol, one file each, registered by name (DESIGN §4)."""

from kvsim.simulator.schedulers.base import SchedulerBase
from kvsim.simulator.schedulers.orca import OrcaScheduler
from kvsim.simulator.schedulers.protocol import Scheduler
from kvsim.simulator.schedulers.static import StaticScheduler
from kvsim.simulator.schedulers.tgi import TgiScheduler
from kvsim.simulator.schedulers.vllm import VllmScheduler
from kvsim.simulator.schedulers.vllm_v0 import VllmV0Scheduler

SCHEDULERS: dict[str, type[SchedulerBase]] = {
    "vllm": VllmScheduler,  # vLLM v1 as in 0.34.0
    "vllm-v0": VllmV0Scheduler,  # vLLM v0.6.3 (the vLLM paper's system)
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
    "VllmV0Scheduler",
]
