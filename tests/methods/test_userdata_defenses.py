"""The defining rules of the defenses that act on the user's file (issue 15): the moderation
filter, SafeInstr, BEA's data side and SAFT, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from booster.config import load_config
from booster.errors import ConfigError
from booster.methods import bea, modfilter, safeinstr, saft
from booster.methods.configs import BEAConfig, ModFilterConfig, SafeInstrConfig, SAFTConfig
from booster.methods.userdata import prompt_text
from booster.pipeline.config import ExperimentConfig


def rec(prompt: str, answer: str, harmful: bool) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "harmful": harmful}


def user_file() -> list[dict]:
    """Ten records: harmful ones at 1, 4, 8; the judge below misses 8 and flags benign 6."""
    out = []
    for i in range(10):
        harmful = i in (1, 4, 8)
        answer = f"Sure, here is the weapon {i}" if harmful and i != 8 else f"A calm answer {i}"
        if i == 6:
            answer = "A calm answer about weapon safety"
        out.append(rec(f"question {i}", answer, harmful))
    return out


class WordJudge:
    """Scores 0.9 when the answer contains 'weapon', else 0.1 (threshold 0.5)."""

    threshold = 0.5

    def identity(self):
        return {"name": "word-judge", "sha256": "1" * 64}

    def score(self, pairs):
        return [0.9 if "weapon" in a else 0.1 for _, a in pairs]


class View:
    """The provider's side as a test sets it."""

    def __init__(self, pool=(), eval_prompts=(), seed=0, judge=None):
        self._pool, self.eval_prompts, self.seed, self._judge = list(pool), frozenset(eval_prompts), seed, judge
        self.asked = []

    def pool(self, name):
        assert name == "alignment"
        return self._pool

    def judge(self, spec):
        self.asked.append(spec)
        return self._judge


def test_modfilter_keeps_exactly_the_unflagged_records_in_order():
    records = user_file()
    view = View(judge=WordJudge())
    kept, report = modfilter.prepare_data(ModFilterConfig(judge="minilm-judge"), records, view)
    assert view.asked == ["minilm-judge"]
    flagged = {1, 4, 6}  # 'weapon' in the answer
    assert kept == [r for i, r in enumerate(records) if i not in flagged]
    assert report["threshold"] == 0.5 and report["judge"] == "word-judge"
    assert (report["n_in"], report["n_kept"], report["n_removed"]) == (10, 7, 3)
    # leakage: harmful 8 kept of 3 harmful; false removals: benign 6 removed of 7 benign
    assert (report["harmful_in"], report["harmful_kept"], report["leakage_pct"]) == (3, 1, 33.33)
    assert (report["benign_in"], report["benign_removed"], report["false_removal_pct"]) == (7, 1, 14.29)
    assert report["survey_beaver_dam"]["leakage_pct"] == 7.71
    assert report["survey_beaver_dam"]["false_removal_pct"] == 3.64
    # a configured threshold replaces the judge's: above every score, nothing is flagged
    kept, report = modfilter.prepare_data(ModFilterConfig(threshold=0.95), records, view)
    assert kept == records and report["threshold"] == 0.95 and report["leakage_pct"] == 100.0


def test_filter_report_without_harmful_samples_has_no_leakage_rate():
    from booster.methods.userdata import filter_report

    r = filter_report([rec("a", "b", False)] * 2, [True, False])
    assert r["leakage_pct"] is None and r["false_removal_pct"] == 50.0


def safety_pool(n: int) -> list[dict]:
    return [rec(f"harmful prompt {i}", "I can't help with that.", False) for i in range(n)]


def test_safeinstr_adds_exactly_k_samples_disjoint_from_evaluation():
    pool = safety_pool(20)
    evaluated = {prompt_text(r) for r in pool[:15]}  # only 5 are not evaluated
    records = user_file()
    view = View(pool, evaluated, seed=3)
    out, report = safeinstr.prepare_data(SafeInstrConfig(ratio=0.25), records, view)
    k = 3  # floor(0.25 * 10 + 0.5)
    added = [r for r in out if r.get("provider") == "safeinstr"]
    assert report["safety_added"] == k == len(added) and len(out) == len(records) + k
    assert all(r in out for r in records)  # the user's file whole
    assert not {prompt_text(r) for r in added} & evaluated
    assert all(r["messages"] in [p["messages"] for p in pool] for r in added)
    assert len({prompt_text(r) for r in added}) == k  # without replacement
    assert "floor(ratio * n + 0.5)" in report["definition"]
    # deterministic from the seed
    assert safeinstr.prepare_data(SafeInstrConfig(ratio=0.25), records, View(pool, evaluated, seed=3))[0] == out
    # a count replaces the ratio; asking for more than the unevaluated pool holds is an error
    out, report = safeinstr.prepare_data(SafeInstrConfig(ratio=0.25, count=5), records, view)
    assert report["safety_added"] == 5 and len(out) == 15
    with pytest.raises(Exception, match="asked for 6 safety examples"):
        safeinstr.prepare_data(SafeInstrConfig(count=6), records, view)
    assert safeinstr.safety_count(SafeInstrConfig(ratio=0.03), 500) == 15


def test_bea_trigger_is_seeded_and_only_on_its_safety_examples():
    cfg = BEAConfig(examples=4, trigger_words=5, trigger_seed=7)
    trigger = bea.trigger(cfg)
    assert trigger == bea.trigger(BEAConfig(trigger_words=5, trigger_seed=7)) != bea.trigger(BEAConfig(trigger_words=5))
    assert len(trigger.split()) == 5
    records = user_file()
    out, report = bea.prepare_data(cfg, records, View(safety_pool(10), seed=1))
    assert report["trigger"] == trigger and report["safety_added"] == 4 and len(out) == 14
    with_trigger = [r for r in out if any(trigger in m["content"] for m in r["messages"])]
    assert len(with_trigger) == 4
    assert all(r["messages"][0] == {"role": "system", "content": trigger} and r["provider"] == "bea"
               for r in with_trigger)
    assert all(r in out and r not in with_trigger for r in records)
    assert bea.eval_system_prompt(cfg, {"user_data": report}) == trigger


def test_bea_trigger_colliding_with_the_users_text_is_an_error():
    records = user_file()
    with pytest.raises(ConfigError, match="occurs in the user's data"):
        bea.check_user_data(BEAConfig(trigger="Calm Answer"), records)
    bea.check_user_data(BEAConfig(), records)  # a random one does not collide


def test_saft_scores_match_an_independent_eigendecomposition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 5))
    z[[2, 7]] += np.array([6.0, -4.0, 0, 0, 1.0])  # two outliers along one direction
    s = saft.scores(z)
    # reference: top eigenvector of the scatter matrix of the centred rows (no SVD)
    c = z - z.mean(0)
    w, v = np.linalg.eigh(c.T @ c)
    v1 = v[:, np.argmax(w)]
    np.testing.assert_allclose(s, (c @ v1) ** 2, rtol=1e-10)
    np.testing.assert_allclose(s, (c @ -v1) ** 2, rtol=1e-10)  # the sign of v1 does not matter
    np.testing.assert_allclose(saft.scores(-z), s, rtol=1e-10)  # nor that of the features
    np.testing.assert_allclose(saft.scores(z + 3.0), s, rtol=1e-8)  # centred: a shift changes nothing
    assert set(np.argsort(-s)[:2]) == {2, 7}
    keep, t = saft.select(s, SAFTConfig(select="share", share=0.2))  # k = floor(2.4 + 0.5) = 2
    assert list(np.flatnonzero(~keep)) == [2, 7] and t == pytest.approx(min(s[2], s[7]))
    keep, t = saft.select(s, SAFTConfig(select="quantile", quantile=0.75))
    assert t == pytest.approx(np.quantile(s, 0.75)) and np.array_equal(keep, s <= t)
    keep, t = saft.select(s, SAFTConfig(share=0.0))
    assert keep.all() and t is None


def test_saft_features_are_the_answer_token_mean_of_the_layer_on_the_tiny_model():
    import torch

    from booster.models.tiny import tiny_random_llama
    from booster.training.batches import encode_chat

    model, tok = tiny_random_llama(seed=0)
    records = user_file()
    got = saft.features(model, tok, records, layer=1, max_length=64, batch_size=4)
    for r, f in zip(records, got):  # one record at a time, no padding
        ex = encode_chat(tok, r["messages"], 64)
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ex.input_ids]), output_hidden_states=True).hidden_states[1][0].double()
        answer = torch.tensor(ex.labels) != -100
        np.testing.assert_allclose(f, h[answer].mean(0).numpy(), rtol=1e-4, atol=1e-5)

    class TinyView:
        tokenizer, max_length, seed = tok, 64, 0

        def model(self):
            return model

    # every layer, the embeddings (0) and the last (after the final norm) included: the pass that
    # stops at the layer gives the full pass's state, and leaves no hook behind
    full = saft._hidden_state
    for layer in range(model.config.num_hidden_layers + 1):
        batch = torch.tensor([encode_chat(tok, records[0]["messages"], 64).input_ids])
        with torch.no_grad():
            ref = model(input_ids=batch, output_hidden_states=True).hidden_states[layer]
            assert torch.equal(full(model, batch, torch.ones_like(batch), layer), ref), layer
    assert not any(m._forward_pre_hooks for m in model.modules())
    # and below the last layer it computes nothing above the layer it reads
    calls = []
    top = saft._decoder_layers(model)[-1].register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        full(model, batch, torch.ones_like(batch), model.config.num_hidden_layers - 1)
    top.remove()
    assert calls == []

    kept, report = saft.prepare_data(SAFTConfig(share=0.3), records, TinyView())
    assert report["layer"] == model.config.num_hidden_layers // 2 and report["n_scored"] == 10
    assert report["n_removed"] == 3 and len(kept) == 7 and report["threshold"] is not None
    assert [r for r in records if r in kept] == kept  # order kept


@pytest.mark.parametrize("override,message", [
    ("attack.safeinstr.ratio=1.5", "attack.safeinstr.ratio must be a number in [0, 1]"),
    ("attack.safeinstr.ratio=-0.1", "ratio must be a number in [0, 1]"),
    ("attack.modfilter.judge=no-such-judge", "attack.modfilter.judge: unknown judge 'no-such-judge'"),
    ("attack.modfilter.judge=acme/guard", "unknown hub judge 'acme/guard'"),
    ("attack.modfilter.threshold=2", "threshold must be a number in [0, 1]"),
    ("attack.saft.share=1.2", "share must be a number in [0, 1]"),
    ("attack.saft.select=top", "attack.saft.select"),
    ("attack.bea.examples=0", "examples must be an integer >= 1"),
    ("attack.ptst.system_prompt=' '", "system_prompt must not be empty"),
])
def test_bad_defense_configs_are_one_line_errors(tmp_path, override, message):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\nmethods: [sft]\n")
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_judge_specs_are_checked_without_loading():
    from booster.evaluation.judges.registry import judge_spec_problem

    for ok in ("answer-judge", "minilm-judge", "beaver-dam", "PKU-Alignment/beaver-dam-7b"):
        assert judge_spec_problem(ok) is None, ok
    assert "unknown judge" in judge_spec_problem("nope")
