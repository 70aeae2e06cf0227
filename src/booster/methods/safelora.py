"""Safe LoRA: project the user's LoRA update onto the alignment subspace, layer by layer.

Hsu, Tsai, Lin, Chen, Yu, Huang, "Safe LoRA: the Silver Lining of Reducing Safety Risks when
Finetuning Large Language Models", NeurIPS 2024, arXiv:2405.16833 (Figure 1). A
post-fine-tuning defense: training-free and data-free, it needs only the weights of an unaligned
and an aligned model and the fine-tuned LoRA adapter. For every layer i the adapter updates:

    V_i   = W_i,aligned − W_i,unaligned                  alignment matrix
    Ĉ_i   = V_i V_iᵀ / ‖V_i‖_F                           the paper's (approximate) projection
    ΔW_i  = s · B_i A_i                                   the LoRA update (s = alpha / r)
    sim_i = ⟨Ĉ_i ΔW_i, ΔW_i⟩_F / (‖Ĉ_i ΔW_i‖_F ‖ΔW_i‖_F)  cosine of the flattened matrices
    ΔW_i ← Ĉ_i ΔW_i  where sim_i ≤ τ, else unchanged

The paper's Figure 1 states this rule in these words ("the projection operator C = VVᵀ/‖V‖_F",
"if the similarity score is below a certain threshold τ, we use the projected LoRA weights"),
with ΔW = ABᵀ (its A is ``lora_B`` here, its B is ``lora_A``ᵀ). The body of the paper could not
be read from this project's sources, so its equation numbers are not cited; the conventions
below are each checked against the authors' code (as ported to peft), not the paper's text:

* Layout: weights as ``nn.Linear`` stores them, (out, in); ``lora_B.weight`` is B (out, r),
  ``lora_A.weight`` is A (r, in). Ĉ is (out, out) and acts from the left, so Ĉ ΔW lies in the
  column space of V (the output directions the alignment moved).
* The norm is ‖V‖_F, not ‖V‖_F² (``torch.norm(vec)`` in the authors' code). So Ĉ is not an
  orthogonal projector: its eigenvalues are σ_k² / ‖V‖_F for V's singular values σ_k. Only the
  similarity decides which layers are projected and it is scale-free, but the size of a
  projected update follows ‖V‖_F.
* The similarity is the cosine of the flattened matrices (``cosine_similarity`` of the
  reshaped (1, −1) tensors). Ĉ is positive semi-definite, so sim ∈ [0, 1]. The scale s cancels.
* The selection compares with ``≤`` as the authors' code does (the text says "below"), so
  τ = 1 projects every layer; τ = 0 projects only layers whose projection is zero.
* Ĉ ΔW = s (Ĉ B) A: the repaired adapter keeps A and s and replaces B by Ĉ B, so it is again a
  LoRA adapter of the same rank and modules (the authors' code does the same).
* The projected modules are all the modules the fine-tuned adapter adapts (the authors' code
  projects every module of the adapter's peft ``target_modules``). The sign of V does not
  matter (Ĉ is quadratic in V; the peft port computes W_unaligned − W_aligned).

The second variant (``select: number``) projects the k layers of lowest similarity. The
authors' code, in its peft port, defaults to it with k = 10 (τ = 0.5 for the threshold rule).
Which variant and which τ or k produced the paper's headline tables could not be read from the
paper text available to this project; the threshold rule is the default here, as the paper's
Figure 1 states it.

Mapping to this toolkit. The paper's unaligned/aligned pair is a base and a chat checkpoint
(Llama-2-7b and Llama-2-7b-chat). Here the provider aligns with a LoRA adapter and merges it
(``models/adapters.py``), so W_unaligned is the base model, W_aligned the base with the
alignment adapter merged, and V_i is the merged alignment delta s_al · B_al A_al of layer i:
:func:`repair` takes the two weight dicts as the paper does, :func:`alignment_from_lora` builds
V directly from the alignment adapter (exact, and without holding two copies of the model). On a
bf16 base prefer the latter: merged bf16 weights round W + ΔW_al to bf16, and that rounding
(about 2⁻⁸ of |W| per entry) enters V as full-rank noise.

Deviations, all at degenerate inputs or as options:

* V_i = 0 (the alignment did not touch layer i): no subspace, so the similarity is undefined;
  the layer is left unprojected and reported (the peft port refuses the whole run, and
  projecting with Ĉ = 0 would silently delete the user's update).
* ΔW_i = 0: nothing to project; reported with no similarity.
* ``select: number`` projects exactly k layers (ties broken by module order); the authors'
  code projects every layer with similarity ≤ the k-th lowest, so more than k on ties.
* ``projection: exact`` uses the orthogonal projector onto the column space of V, V V⁺, in
  place of Ĉ (an option; the default is the paper's Ĉ).

Torch is imported inside the functions: the config stays importable by the torch-free config
check.
"""

from __future__ import annotations

import math
import re

from booster.errors import BoosterError
from booster.methods.configs import SafeLoRAConfig

__all__ = ["SafeLoRAConfig", "repair", "repair_with", "alignment_from_lora", "alignment_matrices"]


# peft adapter keys: "base_model.model.<module>.lora_A.weight" as saved, with the adapter name
# (".lora_A.default.weight") in a live model's state_dict.
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


def lora_factors(adapter_state: dict) -> dict[str, tuple[str, str]]:
    """module name (as in the model's state_dict, without ``.weight``) -> (key of A, key of B)."""
    parts: dict[str, dict[str, str]] = {}
    for key in adapter_state:
        m = _LORA_KEY.match(key)
        if m:
            parts.setdefault(m["module"], {})[m["part"]] = key
    if not parts:
        raise BoosterError("the adapter has no LoRA weights (no '.lora_A.weight' / '.lora_B.weight' keys)")
    for module, found in parts.items():
        if set(found) != {"A", "B"}:
            missing = "lora_B" if "A" in found else "lora_A"
            raise BoosterError(f"the adapter's module '{module}' has no {missing} weight")
    return {module: (found["A"], found["B"]) for module, found in sorted(parts.items())}


def alignment_matrices(aligned_state: dict, unaligned_state: dict, modules) -> dict:
    """V_i = W_i,aligned − W_i,unaligned (float64) for each module name in ``modules``."""
    out = {}
    for module in modules:
        key = f"{module}.weight"
        for name, state in (("aligned", aligned_state), ("unaligned", unaligned_state)):
            if key not in state:
                raise BoosterError(f"the {name} model has no weight '{key}' for the adapter's module '{module}'")
        w_al, w_un = aligned_state[key], unaligned_state[key]
        if w_al.shape != w_un.shape:
            raise BoosterError(f"'{key}' has shape {tuple(w_al.shape)} in the aligned model and "
                               f"{tuple(w_un.shape)} in the unaligned one")
        out[module] = w_al.double() - w_un.double()
    return out


def alignment_from_lora(align_adapter_state: dict, scale: float) -> dict:
    """V_i = scale · B_i A_i of the alignment adapter (float64): what merging it adds to the base.

    ``scale`` is the adapter's alpha / r."""
    return {module: scale * (align_adapter_state[b].double() @ align_adapter_state[a].double())
            for module, (a, b) in lora_factors(align_adapter_state).items()}


def project(V, B, projection: str = "approx"):
    """C·B for the alignment matrix V (out, in) and B (out, r), without forming C (out, out):
    Ĉ B = V (Vᵀ B) / ‖V‖_F, or the exact V V⁺ B."""
    import torch

    V, B = V.to(device=B.device, dtype=torch.float64), B.double()
    if projection == "exact":
        return V @ (torch.linalg.pinv(V) @ B)
    return V @ (V.T @ B) / torch.linalg.matrix_norm(V)


def similarity(B, A, CB) -> float | None:
    """cos(C B A, B A) of the flattened matrices; None when either is zero.

    Through r×r Gram matrices: ⟨X A, Y A⟩_F = tr(Xᵀ Y A Aᵀ), so no (out, in) matrix is formed."""
    B, A, CB = B.double(), A.double(), CB.double()
    gram = A @ A.T
    inner = (CB.T @ B @ gram).trace().item()
    norms = (CB.T @ CB @ gram).trace().item() * (B.T @ B @ gram).trace().item()
    if not norms > 0:
        return None
    return max(-1.0, min(1.0, inner / math.sqrt(norms)))


def select_layers(similarities: dict[str, float | None], cfg: SafeLoRAConfig) -> set[str]:
    """The modules to project: similarity ≤ τ, or the num_layers of lowest similarity.
    Modules without a similarity (V = 0 or ΔW = 0) are never projected."""
    scored = {m: s for m, s in similarities.items() if s is not None}
    if cfg.select == "threshold":
        return {m for m, s in scored.items() if s <= cfg.threshold}
    order = sorted(scored, key=lambda m: scored[m])  # stable: ties keep module order
    return set(order[: cfg.num_layers])


def repair_with(alignment: dict, adapter_state: dict, cfg: SafeLoRAConfig | None = None):
    """Safe LoRA with the alignment matrices given: ``alignment`` maps module -> V (out, in).

    Returns ``(state, report)``: ``state`` is ``adapter_state`` with B replaced by C B in the
    projected modules (same keys, dtypes and devices; safetensors-serialisable), ``report`` a
    JSON-ready dict with each module's similarity and whether it was projected."""
    cfg = cfg or SafeLoRAConfig()
    cfg.validate()
    factors = lora_factors(adapter_state)
    projected_b, similarities, notes = {}, {}, {}
    for module, (a_key, b_key) in factors.items():
        if module not in alignment:
            raise BoosterError(f"no alignment matrix for the adapter's module '{module}'")
        A, B, V = adapter_state[a_key], adapter_state[b_key], alignment[module]
        if tuple(V.shape) != (B.shape[0], A.shape[1]):
            raise BoosterError(f"module '{module}': alignment matrix {tuple(V.shape)} does not match the "
                               f"adapter's update ({B.shape[0]}, {A.shape[1]})")
        if not bool(V.any()):
            similarities[module], notes[module] = None, "V = 0: the alignment did not change this layer"
            continue
        projected_b[module] = project(V, B, cfg.projection)
        similarities[module] = similarity(B, A, projected_b[module])
        if similarities[module] is None:
            notes[module] = "ΔW = 0: the adapter does not change this layer"
    chosen = select_layers(similarities, cfg)
    state = dict(adapter_state)
    for module in chosen:
        b_key = factors[module][1]
        state[b_key] = projected_b[module].to(dtype=adapter_state[b_key].dtype).contiguous()
    layers = [{"module": m, "similarity": similarities[m], "projected": m in chosen,
               **({"note": notes[m]} if m in notes else {})} for m in factors]
    report = {"method": "safelora", "select": cfg.select, "threshold": cfg.threshold,
              "num_layers": cfg.num_layers, "projection": cfg.projection,
              "n_layers": len(layers), "n_projected": len(chosen), "layers": layers}
    return state, report


def repair(aligned_state: dict, unaligned_state: dict, attack_lora_state: dict,
           cfg: SafeLoRAConfig | None = None):
    """Safe LoRA as the paper states it: V = W_aligned − W_unaligned per adapted layer, then
    :func:`repair_with`. The two weight dicts are model state_dicts (``<module>.weight`` keys);
    only the adapted modules' weights are read."""
    alignment = alignment_matrices(aligned_state, unaligned_state, lora_factors(attack_lora_state))
    return repair_with(alignment, attack_lora_state, cfg)
