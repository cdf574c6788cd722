"""``ConstantCostModel``: a fixed time per step plus optional time per token, for closed-form tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvsim.errors import KvsimError
from kvsim.simulator.batch import Batch, StepTime


@dataclass(frozen=True)
class ConstantCostModel:
    """``step_time = step_s + per_token_s * batch.num_tokens``, all charged as ``overhead_s``.

    With ``per_token_s = 0`` every step lasts exactly ``step_s``, so a lone request's TTFT is one step and
    its TPOT one step: timelines can be asserted by arithmetic.
    """

    step_s: float = 0.01
    per_token_s: float = 0.0
    source: str = "constant"
    description: str = "constant step cost (tests)"
    # the uncertain terms a case may set (kvsim.simulator.uncertainty): e.g. step_s declared as one, with
    # step_s=term_value(config, name, nominal) (tests of the verdicts with a known answer)
    uncertain_terms: tuple = ()

    def __post_init__(self) -> None:
        if self.step_s < 0 or self.per_token_s < 0:
            raise KvsimError(
                f"ConstantCostModel: step_s and per_token_s must be >= 0, got "
                f"{self.step_s}, {self.per_token_s}"
            )

    def step_time(self, batch: Batch) -> StepTime:
        return StepTime(
            overhead_s=self.step_s + self.per_token_s * batch.num_tokens,
            allocator_s=batch.allocator_overhead_s,
        )

    def decode_step_times(
        self, batch: Batch, num_steps: int, decode_kv_blocks: np.ndarray | None = None
    ) -> np.ndarray:
        # A decode step's token count does not change from step to step, so every step costs the same;
        # computed through step_time so the two agree bit for bit.
        return np.full(num_steps, self.step_time(batch).total_s, dtype=np.float64)
