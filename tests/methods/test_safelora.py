"""Safe LoRA (booster.methods.safelora) against an independent numpy computation.

The reference below forms every matrix explicitly (Ĉ as an (out, out) matrix, ΔW = s·B·A as an
(out, in) matrix, the cosine over the flattened entries in a Python loop), while the method works
through Vᵀ B and r×r Gram matrices in torch: two code paths for the same rule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from booster.errors import BoosterError, ConfigError
from booster.methods.safelora import SafeLoRAConfig, alignment_from_lora, lora_factors, repair, repair_with
from booster.models.tiny import TINY_LLAMA_DEFAULTS

H = TINY_LLAMA_DEFAULTS["hidden_size"]
KV = H // TINY_LLAMA_DEFAULTS["num_attention_heads"] * TINY_LLAMA_DEFAULTS["num_key_value_heads"]
FF = TINY_LLAMA_DEFAULTS["intermediate_size"]
# (out, in) of the tiny Llama's adapted projections: k/v are narrower (grouped-query attention).
SHAPES = {"self_attn.q_proj": (H, H), "self_attn.k_proj": (KV, H), "self_attn.v_proj": (KV, H),
          "self_attn.o_proj": (H, H), "mlp.gate_proj": (FF, H), "mlp.up_proj": (FF, H), "mlp.down_proj": (H, FF)}
RANK, SCALE = 4, 2.0


def key(module: str, part: str) -> str:
    return f"base_model.model.{module}.lora_{part}.weight"


def toy_models(seed: int = 0, layers: int = 2, zero_v: tuple[str, ...] = ()):
    """(aligned, unaligned, adapter): model weight dicts whose difference V has rank 3 per
    module, and a rank-4 adapter whose update leans into V's column space by a different
    amount in each module, so the similarities spread over (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    aligned, unaligned, adapter = {}, {}, {}
    for layer in range(layers):
        for i, (name, (out, inp)) in enumerate(SHAPES.items()):
            module = f"model.layers.{layer}.{name}"
            w = torch.randn(out, inp, generator=g)
            v = torch.randn(out, 3, generator=g) @ torch.randn(3, inp, generator=g) * 0.1
            if module in zero_v:
                v.zero_()
            unaligned[f"{module}.weight"], aligned[f"{module}.weight"] = w, w + v
            share = (layer * len(SHAPES) + i) / (layers * len(SHAPES))  # how much of B lies in col(V)
            b = share * v @ torch.randn(inp, RANK, generator=g) + (1 - share) * torch.randn(out, RANK, generator=g)
            adapter[key(module, "A")] = torch.randn(RANK, inp, generator=g)
            adapter[key(module, "B")] = b
    return aligned, unaligned, adapter


# -- the independent reference ---------------------------------------------------------------

def reference(aligned, unaligned, adapter, select="threshold", tau=0.5, k=10, exact=False):
    """module -> (similarity, projected?, final ΔW) by the paper's formulas, in numpy."""
    sims, deltas, projected = {}, {}, {}
    for name in adapter:
        if not name.endswith("lora_A.weight"):
            continue
        module = name[len("base_model.model."): -len(".lora_A.weight")]
        A = adapter[name].double().numpy()
        B = adapter[name.replace("lora_A", "lora_B")].double().numpy()
        V = aligned[f"{module}.weight"].double().numpy() - unaligned[f"{module}.weight"].double().numpy()
        dW = SCALE * (B @ A)
        deltas[module] = dW
        if not V.any():
            sims[module] = None
            continue
        C = V @ np.linalg.pinv(V) if exact else (V @ V.T) / np.sqrt((V ** 2).sum())
        P = C @ dW
        projected[module] = P
        dot = sum(float(p) * float(d) for p, d in zip(P.ravel(), dW.ravel()))
        sims[module] = dot / (math.sqrt(sum(float(p) ** 2 for p in P.ravel()))
                              * math.sqrt(sum(float(d) ** 2 for d in dW.ravel())))
    scored = [(s, m) for m, s in sims.items() if s is not None]
    if select == "threshold":
        chosen = {m for s, m in scored if s <= tau}
    else:
        chosen = {m for _, m in sorted(scored)[:k]}
    return {m: (sims[m], m in chosen, projected[m] if m in chosen else deltas[m]) for m in sims}


def final_delta(state, module):
    return SCALE * (state[key(module, "B")].double() @ state[key(module, "A")].double()).numpy()


def check_against_reference(state, report, expected):
    assert report["n_layers"] == len(expected)
    assert report["n_projected"] == sum(p for _, p, _ in expected.values())
    for row in report["layers"]:
        sim, chosen, delta = expected[row["module"]]
        assert row["projected"] == chosen, row
        if sim is None:
            assert row["similarity"] is None
        else:
            assert row["similarity"] == pytest.approx(sim, abs=1e-9)
        np.testing.assert_allclose(final_delta(state, row["module"]), delta, rtol=1e-4, atol=1e-6)


# -- faithfulness ----------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [0.3, 0.5, 0.8])
def test_threshold_rule_matches_reference(tau):
    aligned, unaligned, adapter = toy_models()
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=tau))
    expected = reference(aligned, unaligned, adapter, tau=tau)
    sims = [s for s, _, _ in expected.values()]
    # the toy spreads the similarities, so each τ splits the layers (a real test of the rule)
    assert min(sims) < tau < max(sims), sims
    assert 0 < report["n_projected"] < report["n_layers"]
    check_against_reference(state, report, expected)


@pytest.mark.parametrize("k", [1, 5, 14, 20])
def test_number_rule_matches_reference(k):
    aligned, unaligned, adapter = toy_models(seed=1)
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(select="number", num_layers=k))
    check_against_reference(state, report, reference(aligned, unaligned, adapter, select="number", k=k))
    assert report["n_projected"] == min(k, report["n_layers"])


def test_exact_projection_matches_reference():
    aligned, unaligned, adapter = toy_models(seed=2)
    cfg = SafeLoRAConfig(threshold=0.9, projection="exact")
    state, report = repair(aligned, unaligned, adapter, cfg)
    check_against_reference(state, report, reference(aligned, unaligned, adapter, tau=0.9, exact=True))


def test_projected_update_lies_in_the_column_space_of_v():
    aligned, unaligned, adapter = toy_models(seed=3)
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=1.0))
    for row in report["layers"]:
        module = row["module"]
        V = (aligned[f"{module}.weight"] - unaligned[f"{module}.weight"]).double().numpy()
        Q, _ = np.linalg.qr(V @ np.random.default_rng(0).standard_normal((V.shape[1], 3)))  # basis of col(V)
        outside = lambda M: np.linalg.norm(M - Q @ (Q.T @ M)) / np.linalg.norm(M)  # noqa: E731
        assert outside(final_delta(state, module)) < 1e-5, module  # float32 rounding of V and C·B
        assert outside(final_delta(adapter, module)) > 1e-2, module  # the original update was not


def test_similarity_and_selection_do_not_depend_on_the_lora_scale():
    # ΔW = s·B·A: s cancels in the cosine and C(sBA) = s(CB)A, so the repair never needs s.
    aligned, unaligned, adapter = toy_models(seed=4)
    scaled = {k: (v * 3.0 if "lora_A" in k else v) for k, v in adapter.items()}
    _, r1 = repair(aligned, unaligned, adapter)
    _, r2 = repair(aligned, unaligned, scaled)
    assert [r["similarity"] for r in r1["layers"]] == pytest.approx([r["similarity"] for r in r2["layers"]])
    assert [r["projected"] for r in r1["layers"]] == [r["projected"] for r in r2["layers"]]
    assert 0 < r1["n_projected"] < r1["n_layers"]


# -- edge cases ------------------------------------------------------------------------------

def test_threshold_zero_projects_none_and_one_projects_all():
    aligned, unaligned, adapter = toy_models(seed=5)
    none, report0 = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=0.0))
    assert report0["n_projected"] == 0
    assert all(torch.equal(none[k], adapter[k]) for k in adapter)
    every, report1 = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=1.0))
    assert report1["n_projected"] == report1["n_layers"] == 2 * len(SHAPES)
    check_against_reference(every, report1, reference(aligned, unaligned, adapter, tau=1.0))


def test_layer_with_zero_alignment_matrix_is_left_alone_and_reported():
    zero = "model.layers.1.self_attn.v_proj"
    aligned, unaligned, adapter = toy_models(seed=6, zero_v=(zero,))
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=1.0))
    row = next(r for r in report["layers"] if r["module"] == zero)
    assert row["similarity"] is None and row["projected"] is False and "V = 0" in row["note"]
    assert torch.equal(state[key(zero, "B")], adapter[key(zero, "B")])
    assert report["n_projected"] == report["n_layers"] - 1
    check_against_reference(state, report, reference(aligned, unaligned, adapter, tau=1.0))
    _, top = repair(aligned, unaligned, adapter, SafeLoRAConfig(select="number", num_layers=100))
    assert top["n_projected"] == top["n_layers"] - 1  # never among the k lowest either


def test_zero_update_has_no_similarity():
    aligned, unaligned, adapter = toy_models(seed=7, layers=1)
    module = "model.layers.0.mlp.up_proj"
    adapter[key(module, "B")] = torch.zeros_like(adapter[key(module, "B")])  # as peft initialises B
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=1.0))
    row = next(r for r in report["layers"] if r["module"] == module)
    assert row["similarity"] is None and not row["projected"] and "ΔW = 0" in row["note"]
    assert not state[key(module, "B")].any()


def test_output_keeps_keys_dtypes_and_other_tensors_and_round_trips_through_safetensors(tmp_path):
    aligned, unaligned, adapter = toy_models(seed=8, layers=1)
    adapter = {k: v.to(torch.bfloat16) for k, v in adapter.items()}
    adapter["base_model.model.lm_head.bias"] = torch.ones(3)  # a non-LoRA tensor passes through
    state, report = repair(aligned, unaligned, adapter, SafeLoRAConfig(threshold=1.0))
    assert state.keys() == adapter.keys()
    assert all(state[k].dtype == adapter[k].dtype and state[k].shape == adapter[k].shape for k in adapter)
    assert all(torch.equal(state[k], adapter[k]) for k in adapter if "lora_B" not in k)
    assert all(not torch.equal(state[k], adapter[k]) for k in adapter if "lora_B" in k)
    save_file(state, str(tmp_path / "adapter_model.safetensors"))
    loaded = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    import json
    json.dumps(report)  # the report is JSON-ready


def test_alignment_from_lora_is_the_merged_delta():
    g = torch.Generator().manual_seed(9)
    q = "model.layers.0.self_attn.q_proj"
    align = {key(q, "A"): torch.randn(RANK, H, generator=g), key(q, "B"): torch.randn(H, RANK, generator=g)}
    w = torch.randn(H, H, generator=g)
    merged = {f"{q}.weight": w + SCALE * align[key(q, "B")] @ align[key(q, "A")]}
    adapter = {key(q, "A"): torch.randn(RANK, H, generator=g), key(q, "B"): torch.randn(H, RANK, generator=g)}
    cfg = SafeLoRAConfig(threshold=1.0)
    via_weights, r1 = repair(merged, {f"{q}.weight": w}, adapter, cfg)
    via_lora, r2 = repair_with(alignment_from_lora(align, SCALE), adapter, cfg)
    assert r1["layers"][0]["similarity"] == pytest.approx(r2["layers"][0]["similarity"], abs=1e-5)
    torch.testing.assert_close(via_weights[key(q, "B")], via_lora[key(q, "B")], rtol=1e-4, atol=1e-5)


def test_adapter_keys_with_an_adapter_name_are_read():
    # a live PeftModel's state_dict carries the adapter name: "...lora_A.default.weight"
    state = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight": torch.zeros(2, 4),
             "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight": torch.zeros(4, 2)}
    assert list(lora_factors(state)) == ["model.layers.0.self_attn.q_proj"]


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, words", [
    ({"threshold": 1.5}, "threshold"), ({"threshold": -0.1}, "threshold"), ({"threshold": True}, "threshold"),
    ({"num_layers": -1}, "num_layers"), ({"select": "top"}, "select"), ({"projection": "svd"}, "projection"),
])
def test_bad_config_is_a_config_error(fields, words):
    with pytest.raises(ConfigError, match=words):
        SafeLoRAConfig(**fields).validate()


def test_bad_inputs_are_one_line_booster_errors():
    aligned, unaligned, adapter = toy_models(seed=10, layers=1)
    module = "model.layers.0.self_attn.q_proj"
    missing = {k: v for k, v in aligned.items() if k != f"{module}.weight"}
    with pytest.raises(BoosterError, match="aligned model has no weight 'model.layers.0.self_attn.q_proj.weight'"):
        repair(missing, unaligned, adapter)
    lone = {k: v for k, v in adapter.items() if k != key(module, "B")}
    with pytest.raises(BoosterError, match="has no lora_B"):
        repair(aligned, unaligned, lone)
    with pytest.raises(BoosterError, match="no LoRA weights"):
        repair(aligned, unaligned, {"something.weight": torch.zeros(2)})
    wrong = dict(unaligned, **{f"{module}.weight": torch.zeros(H, H + 1)})
    with pytest.raises(BoosterError, match="has shape"):
        repair(aligned, wrong, adapter)
    with pytest.raises(BoosterError, match="does not match"):
        repair_with({module: torch.ones(H, H + 1)}, {key(module, "A"): adapter[key(module, "A")],
                                                    key(module, "B"): adapter[key(module, "B")]})
