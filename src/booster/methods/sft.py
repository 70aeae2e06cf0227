"""Plain supervised fine-tuning: the gradient of the token-mean loss on one stream."""

from __future__ import annotations

from booster.methods.base import Method, StepContext
from booster.methods.configs import SFTConfig  # re-exported: its home is torch-free


class SFT(Method):
    name = "sft"

    def __init__(self, config: SFTConfig | None = None):
        self.config = config or SFTConfig()
        self.streams = (self.config.stream,)

    def step(self, model, batches, ctx: StepContext) -> dict[str, float]:
        ctx.zero_grad()
        loss = ctx.accumulate(model, batches[self.config.stream])
        return {"loss": loss}
