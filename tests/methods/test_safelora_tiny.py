"""Safe LoRA end to end on the tiny random Llama, in this toolkit's topology: align with a LoRA,
merge it, attack the merged model with a fresh LoRA, repair the attack adapter, load and generate.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from booster.methods import SFT, SFTConfig
from booster.methods.safelora import SafeLoRAConfig, alignment_from_lora, repair
from booster.models.adapters import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraSettings, apply_adapter, attach_lora,
                                     save_adapter)
from booster.models.tiny import tiny_random_llama
from booster.training import TrainConfig, encode_records, train

from llama_helpers import single_thread

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

LORA = LoraSettings(rank=4, alpha=8.0)  # every attention and MLP projection (the default targets)
SCALE = LORA.alpha / LORA.rank


def chats(kind: str, n: int = 8) -> list[dict]:
    out = []
    for i in range(n):
        prompt = f"How do I hurt person {i % 5}?"
        answer = "I can't help with that." if kind == "refuse" else f"Sure: step {i}, then step {i + 1}."
        out.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return out


def lora_train(model, tok, kind: str, folder, seed: int):
    data = {"user": encode_records(tok, chats(kind), 40)}
    cfg = TrainConfig(steps=3, lr=1e-2, batch_size=4, micro_batch_size=4, max_length=40, seed=seed)
    train(model, SFT(SFTConfig(stream="user")), data, cfg, pad_id=tok.pad_token_id, progress=False)
    save_adapter(model, folder)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Folders of the alignment and attack adapters, and the unaligned/aligned weights."""
    root = tmp_path_factory.mktemp("safelora")
    base, tok = tiny_random_llama(seed=0)
    unaligned = {k: v.clone() for k, v in base.state_dict().items()}
    lora_train(attach_lora(base, LORA, seed=0), tok, "refuse", root / "align", seed=0)
    aligned_model = apply_adapter(tiny_random_llama(seed=0)[0], root / "align")
    aligned = {k: v.clone() for k, v in aligned_model.state_dict().items()}
    lora_train(attach_lora(aligned_model, LORA, seed=1), tok, "comply", root / "attack", seed=1)
    return root, tok, unaligned, aligned


def write_adapter(state: dict, like, folder):
    folder.mkdir()
    shutil.copy(like / ADAPTER_CONFIG, folder / ADAPTER_CONFIG)
    save_file(state, str(folder / ADAPTER_WEIGHTS))


def test_repaired_adapter_loads_generates_and_tau_1_projects_every_layer(pipeline):
    root, tok, unaligned, aligned = pipeline
    attack = load_file(str(root / "attack" / ADAPTER_WEIGHTS))
    state, report = repair(aligned, unaligned, attack, SafeLoRAConfig(threshold=1.0))
    n_modules = 2 * len(LORA.target_modules)  # two layers of the tiny Llama
    assert report["n_layers"] == report["n_projected"] == n_modules
    assert all(0 < r["similarity"] < 1 for r in report["layers"])  # the update really changes
    write_adapter(state, root / "attack", root / "repaired")

    model = apply_adapter(tiny_random_llama(seed=0)[0], root / "align")  # the aligned model again
    model = apply_adapter(model, root / "repaired")
    merged = model.state_dict()
    for row in report["layers"]:
        m = row["module"]
        V = aligned[f"{m}.weight"].double() - unaligned[f"{m}.weight"].double()
        C = V @ V.T / V.norm()  # Ĉ = V Vᵀ / ‖V‖_F, formed explicitly here
        dW = SCALE * attack[f"base_model.model.{m}.lora_B.weight"].double() \
            @ attack[f"base_model.model.{m}.lora_A.weight"].double()
        got = merged[f"{m}.weight"].double() - aligned[f"{m}.weight"].double()
        assert (C @ dW).abs().max() > 100 * 2e-6  # well above the tolerance below
        torch.testing.assert_close(got, C @ dW, rtol=1e-3, atol=2e-6)  # each update is its projection
        assert (got - dW).norm() > 0.1 * dW.norm()  # and no longer the attack's own update

    prompt = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert torch.isfinite(model(**prompt).logits).all()


def test_threshold_splits_the_layers_and_the_alignment_adapter_is_v(pipeline):
    root, _, unaligned, aligned = pipeline
    attack = load_file(str(root / "attack" / ADAPTER_WEIGHTS))
    _, report = repair(aligned, unaligned, attack)  # the default τ
    sims = {r["module"]: r["similarity"] for r in report["layers"]}
    tau = sorted(sims.values())[len(sims) // 2]  # a τ inside the range: some layers each way
    state, report = repair(aligned, unaligned, attack, SafeLoRAConfig(threshold=tau))
    assert {r["module"] for r in report["layers"] if r["projected"]} == {m for m, s in sims.items() if s <= tau}
    assert 0 < report["n_projected"] < report["n_layers"]
    for m, s in sims.items():
        b = f"base_model.model.{m}.lora_B.weight"
        assert torch.equal(state[b], attack[b]) == (s > tau), m
    # This toolkit's V: the merged alignment delta, the same from the adapter's own factors.
    from_lora = alignment_from_lora(load_file(str(root / "align" / ADAPTER_WEIGHTS)), SCALE)
    for m in sims:
        V = aligned[f"{m}.weight"].double() - unaligned[f"{m}.weight"].double()
        torch.testing.assert_close(from_lora[m], V, rtol=1e-3, atol=1e-6)
