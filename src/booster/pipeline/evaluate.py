"""The evaluation of one model state: HS, FA and over-refusal, each task cached on its own (the
HS of an aligned model is computed once, whatever user task follows).

Two cached steps per task, through the same functions as ``booster eval``
(``booster.evaluation.harness``): the answers (``generate``: expensive, judge-independent) and
their scores (``eval``: cheap), so changing the judge rescores without regenerating.
"""

from __future__ import annotations

from dataclasses import dataclass

from booster import io
from booster.pipeline import align, attack, repair
from booster.pipeline.cache import StageResult, digest, key_identity
from booster.pipeline.context import Context, eval_tasks
from booster.pipeline.resources import measure


@dataclass(frozen=True)
class ModelState:
    """The base model, + the alignment adapter, + the attack adapter or its repaired version."""

    aligned: StageResult | None = None
    attacked: StageResult | None = None
    repaired: StageResult | None = None
    system_prompt: str | None = None
    """The system prompt in front of every evaluation prompt (a fine-tuning-stage defense's,
    ``Defense.eval_system_prompt``); None: the chat template's own."""

    def prompt_fields(self) -> dict:
        """What the state adds to its answers' key and records: the system prompt, only when there
        is one (so every key made without one is what it always was)."""
        return {"system_prompt": self.system_prompt} if self.system_prompt is not None else {}

    def keys(self) -> dict:
        """The state's stage keys as they enter generate keys and records (``repair`` only when
        there is one, so the keys of unrepaired states are those they always were)."""
        keys = {"align": self.aligned.key if self.aligned else None,
                "attack": self.attacked.key if self.attacked else None}
        return keys | ({"repair": self.repaired.key} if self.repaired else {})

    def topology(self) -> str | None:
        """The attack's topology, as its stage recorded it (None: not attacked)."""
        return self.attacked.record["topology"] if self.attacked else None


def gen_key(ctx: Context, state: ModelState, task, limit) -> str:
    """Answers depend on the model state, the prompts and the decoding, not on the judge."""
    e = ctx.cfg.eval
    return digest({"stage": "generate", "model": ctx.model_key, "dtype": ctx.cfg.dtype, **state.keys(),
                   "topology": state.topology(),
                   "task": task.name, "limit": limit, "pool": ctx.pool_hash(task.pool),
                   "max_new_tokens": task.max_new_tokens or e.max_new_tokens, "batch_size": e.batch_size,
                   "eval_dtype": e.dtype, **state.prompt_fields()})


def _judge_of(ctx: Context, task) -> dict | None:
    return ctx.judge_identity() if task.metric == "harmful_score" else None


def eval_key(ctx: Context, generate_key: str, task) -> str:
    judge = key_identity(ctx.judge_identity() or {"name": "none"}) if task.metric == "harmful_score" else None
    return digest({"stage": "eval", "generate": generate_key, "task": task.name, "judge": judge})


def run(ctx: Context, state: ModelState, user_task: str) -> dict[str, StageResult]:
    """The scored evaluation of every task of ``user_task`` (see the module docstring)."""
    from booster.evaluation.harness import load_prompts

    cache = ctx.cache
    plan = [(t, limit, gen_key(ctx, state, t, limit)) for t, limit in eval_tasks(ctx.cfg, user_task)]
    plan = [(t, limit, g, eval_key(ctx, g, t)) for t, limit, g in plan]
    todo = [step for step in plan if not cache.has("eval", step[3])]
    if todo and any(not cache.has("generate", g) for _, _, g, _ in todo):
        state = with_adapters(ctx, state)  # on every process
    if todo and ctx.state.is_main_process:  # generation runs on the main process only
        model = None  # (model, tokenizer), loaded when the first answers must be generated
        for t, limit, g, k in todo:
            records = load_prompts(ctx.data_dir, t, limit)
            if not cache.has("generate", g):
                with cache.lock("generate", g):
                    if not cache.has("generate", g):
                        model = model or model_of(ctx, state)
                        _generate(ctx, t, records, g, model, state)
            with cache.lock("eval", k):
                if not cache.has("eval", k):
                    _score(ctx, t, records, cache.load("generate", g), k, state)
    if todo:
        ctx.state.wait_for_everyone()
    return {t.name: cache.load("eval", k) for t, _, _, k in plan}


def with_adapters(ctx: Context, state: ModelState) -> ModelState:
    return ModelState(align.with_adapter(ctx, state.aligned), attack.with_adapter(ctx, state.attacked),
                      repair.with_adapter(ctx, state.repaired), state.system_prompt)


def model_of(ctx: Context, state: ModelState):
    """The model state to generate with: base, + alignment adapter, + (repaired) attack adapter."""
    from booster.models.adapters import apply_adapter

    model, tok = ctx.base_model(ctx.cfg.eval.dtype)
    continued = state.aligned is not None and state.topology() == "continue"
    if state.aligned is not None and not continued:
        model = apply_adapter(model, state.aligned.adapter)
    last = state.repaired or state.attacked
    if last is not None:
        model = apply_adapter(model, last.adapter)
    return model, tok


def _generate(ctx: Context, task, records: list[dict], key: str, model, state: ModelState) -> None:
    """The answers of one model state to one task's prompts (main process, under the lock)."""
    from booster.evaluation.harness import answer_task

    e = ctx.cfg.eval
    work = ctx.cache.work("generate", key, fresh=True)  # generation is redone whole, not resumed
    record = {"stage": "generate", "key": key, "task": task.name, **state.keys(), **state.prompt_fields(),
              "bf16_kernels": ctx.bf16_kernels}
    with measure(record):
        gens = answer_task(*model, task, records, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                           progress=ctx.progress, system=state.system_prompt)
    record["generated_tokens"] = sum(g.new_tokens for g in gens)
    io.write_jsonl(work / "answers.jsonl", [{"answer": g.text, "new_tokens": g.new_tokens} for g in gens])
    ctx.cache.finish("generate", key, work, record)


def _score(ctx: Context, task, records: list[dict], generated: StageResult, key: str, state: ModelState) -> None:
    """Score cached answers with the task's rule or the judge (main process, under the lock)."""
    from booster.evaluation.harness import score_answers

    answers = [row["answer"] for row in io.read_jsonl(generated.path / "answers.jsonl")]
    work = ctx.cache.work("eval", key, fresh=True)
    record = {"stage": "eval", "key": key, "generate": generated.key, "task": task.name, **state.keys(),
              "judge": _judge_of(ctx, task)}
    with measure(record):
        metrics, rows = score_answers(task, records, answers, ctx.judge() if _judge_of(ctx, task) else None,
                                      max_new_tokens=ctx.cfg.eval.max_new_tokens,
                                      generation_seconds=generated.record["seconds"],
                                      generated_tokens=generated.record["generated_tokens"])
    record["metrics"] = metrics
    io.write_jsonl(work / "samples.jsonl", rows)
    ctx.cache.finish("eval", key, work, record)
