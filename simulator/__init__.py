"""kvsim.simulator: the SimPy serving engine, schedulers, KV allocators and cost models.

This package never imports torch, triton or plotly, and importing it does not import simpy either, so that
``kvsim.calibrate`` (which runs on the GPU machine, where simpy is absent) can use its specs and profile schema.
"""
