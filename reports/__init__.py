"""kvsim.reports: interactive plotly HTML reports built from result rows."""
