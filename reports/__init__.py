"""kvsim.reports: interactive plotly HTML reports built from result rows (DESIGN §6; STYLE 6).

The only place in kvsim that imports plotly. Figures (``kvsim.reports.figures``) take plain rows and return a
plotly ``Figure``; the ``write_*`` functions assemble one self-contained HTML file (plotly.js embedded once).
"""

from kvsim.reports.write import (
    write_calibration_report,
    write_capacity_report,
    write_profile_report,
    write_report,
    write_sweep_report,
)

__all__ = [
    "write_calibration_report",
    "write_capacity_report",
    "write_profile_report",
    "write_report",
    "write_sweep_report",
]
