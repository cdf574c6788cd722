"""kvsim.calibrate: profile kernels and GEMMs on a GPU and fit latency models (never imports simpy or plotly)."""
