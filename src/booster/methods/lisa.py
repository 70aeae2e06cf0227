"""Lisa (Huang et al., "Lisa: Lazy Safety Alignment for Large Language Models against Harmful
Fine-tuning Attack", NeurIPS 2024, arXiv:2405.18641).

Fine-tuning-stage defense. Bi-State Optimization: the service provider alternates between
K_align steps on its alignment data and K_user steps on the user's (possibly poisoned) data,
starting with the alignment state (the authors' trainer starts in "alignment" and switches
after ``alignment_step`` steps). Lisa adds a proximal term to each state's loss (Algorithm 1):

    state s:  min_w  f_s(w) + ρ/2 · ‖w − w̃‖²

f_s: the token-mean loss on the state's data; w̃: the trainable weights when the state last
switched, i.e. the end point of the other state (the initial weights in the first state).
The proximal term limits the drift of each state towards its own optimum ("excess drift"),
which is what breaks plain alternation when K_align ≪ K_user. As in the authors' trainer,
the proximal term is off during the first ``proximal_start`` fraction of training (it is on
at 0-based step t iff t > proximal_start · total_steps).

The state is a pure function of the step index (``ctx.step``, position in the K_align + K_user cycle), so
``streams_for_step(step)`` tells the loop which single stream a step needs. The snapshot w̃
is the only state that cannot be recomputed; ``state_dict`` returns it as tensors.
"""

from __future__ import annotations

import torch

from booster.errors import ConfigError
from booster.methods.base import Method, StepContext
from booster.methods.configs import LisaConfig  # re-exported: its home is torch-free


class Lisa(Method):
    name = "lisa"

    def __init__(self, config: LisaConfig | None = None):
        self.config = config or LisaConfig()
        self.config.validate()
        c = self.config
        if c.rho > 0 and c.proximal_start > 0 and c.total_steps is None:
            raise ConfigError("lisa: total_steps is required to start the proximal term after "
                              "proximal_start of training (set it to train.steps)")
        self.streams = (c.align_stream, c.user_stream)
        self.state: str | None = None  # "align" or "user": the state of the last step taken
        self.snapshot: list[torch.Tensor] | None = None  # w̃, one tensor per trainable parameter

    def state_at(self, step: int) -> str:
        c = self.config
        return "align" if step % (c.align_steps + c.user_steps) < c.align_steps else "user"

    def streams_for_step(self, step: int) -> tuple[str, ...]:
        """The one stream step ``step`` trains on (the loop draws only this one)."""
        return (self._stream(self.state_at(step)),)

    def _stream(self, state: str) -> str:
        return self.config.align_stream if state == "align" else self.config.user_stream

    def proximal_on(self, step: int) -> bool:
        c = self.config
        if c.rho == 0:
            return False
        return c.proximal_start == 0 or step > c.proximal_start * c.total_steps

    def step(self, model, batches, ctx: StepContext) -> dict[str, float]:
        params, rho = ctx.params, self.config.rho
        state = self.state_at(ctx.step)
        if self.snapshot is None or state != self.state:
            # Start or switch of state: w̃ ← the weights now, the end point of the other state.
            self.snapshot = [p.detach().clone() for p in params]
            self.state = state
        if len(self.snapshot) != len(params):
            raise ValueError(f"lisa: snapshot holds {len(self.snapshot)} tensors, the model {len(params)} "
                             "trainable parameters")
        self.snapshot = [w.to(device=p.device, dtype=p.dtype) for w, p in zip(self.snapshot, params)]

        ctx.zero_grad()
        loss = ctx.accumulate(model, batches[self._stream(state)])
        with torch.no_grad():
            drift = sum(float(((p.double() - w.double()) ** 2).sum()) for p, w in zip(params, self.snapshot))
        logs = {"loss": loss, "align_state": float(state == "align"), "drift": drift}
        if self.proximal_on(ctx.step):
            # ∇ ρ/2‖w − w̃‖² = ρ(w − w̃), added to the state loss gradient (Algorithm 1). The
            # same on every process, so it is added after the all-reduce in accumulate.
            with torch.no_grad():
                for p, w in zip(params, self.snapshot):
                    g = (p.detach() - w).mul_(rho)
                    p.grad = g if p.grad is None else p.grad.add_(g)
            logs["proximal_loss"] = rho / 2 * drift
        return logs

    def state_dict(self) -> dict:
        """Scalars plus the snapshot tensors (see ``booster.methods.state`` to checkpoint them)."""
        return {"state": self.state,
                "snapshot": None if self.snapshot is None else {str(i): w for i, w in enumerate(self.snapshot)}}

    def load_state_dict(self, state: dict) -> None:
        if state["state"] is not None and state["snapshot"] is None:
            raise ValueError("lisa: the saved state has no snapshot w̃ (its tensors were not restored)")
        self.state = state["state"]  # checkpoints before the step context carried the step also hold "step"
        snap = state["snapshot"]
        self.snapshot = None if snap is None else [snap[str(i)].clone() for i in range(len(snap))]
