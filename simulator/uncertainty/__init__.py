"""Uncertainty of the cost model and the engine, and whether a comparison survives it (issue 23).

- ``terms``: ``UncertainTerm`` (a term's nominal value, its range and where both come from) and the
  ``term_values`` config field that sets one case's values;
- ``cases``: which cases to run (one term at a time, corners of the most influential, a seeded sample);
- ``verdict``: intervals of the headline metrics across cases, and whether each pair's order holds;
- ``run``: the cases of a set of configurations through the sweep backends (local pool or Ray), resumable.
"""
