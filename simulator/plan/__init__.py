"""``kvsim plan`` as a Python API: max sustainable rate under SLOs, and the fewest GPUs / cheapest
configuration for a target rate (DESIGN §7, issue 7)."""

from kvsim.simulator.plan.max_rate import MaxRate, Probe, find_max_rate
from kvsim.simulator.plan.slo import Slo, parse_slos, slo_violations
from kvsim.simulator.plan.stability import Stability, queue_growth

__all__ = [
    "MaxRate",
    "Probe",
    "Slo",
    "Stability",
    "find_max_rate",
    "parse_slos",
    "queue_growth",
    "slo_violations",
]
