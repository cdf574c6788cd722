"""kvsim.simulator.schedulers: scheduling policies behind the Scheduler Protocol."""
