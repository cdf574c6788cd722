"""One function per figure: plain rows in, a plotly ``Figure`` out. Each module documents its row format."""

from kvsim.reports.figures.calibration import calibration_figure
from kvsim.reports.figures.capacity import capacity_figure
from kvsim.reports.figures.latency_cdf import latency_cdf_figure
from kvsim.reports.figures.memory_breakdown import memory_breakdown_figure
from kvsim.reports.figures.memory_timeline import memory_timeline_figure
from kvsim.reports.figures.rate_sweep import rate_sweep_figure

__all__ = [
    "calibration_figure",
    "capacity_figure",
    "latency_cdf_figure",
    "memory_breakdown_figure",
    "memory_timeline_figure",
    "rate_sweep_figure",
]
