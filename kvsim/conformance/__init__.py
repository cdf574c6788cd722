"""Conformance of kvsim's ``vllm`` scheduler with vLLM's real v1 scheduler, step by step (issue 20).

``cases`` defines the workloads, ``kvsim_side`` runs kvsim on them with per-step records, ``vllm_side`` runs
vLLM 0.34.0's ``Scheduler`` on them in its own venv (``scripts/conformance/vllm_driver.py``), and ``compare``
lines the two up step by step. ``kvsim conformance vllm`` runs it all and prints the table.
"""
