"""Batched greedy generation equals one-at-a-time generation (left padding, KV cache)."""

from __future__ import annotations

import pytest

from booster.models.generation import decoding_settings, generate, stop_token_ids
from booster.models.tiny import tiny_random_llama

PROMPTS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Write a long and detailed story about a dragon who learns to cook pasta."}],
    [{"role": "user", "content": "2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours of the rainbow."}],
    [{"role": "user", "content": "What is the capital of France, and why is it famous?"}],
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_llama(seed=1)


def test_batched_equals_one_at_a_time(tiny):
    model, tok = tiny
    one = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=1, progress=False)
    batched = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, progress=False)
    assert [g.text for g in one] == [g.text for g in batched]
    assert [g.new_tokens for g in one] == [g.new_tokens for g in batched]
    assert all(1 <= g.new_tokens <= 12 for g in one)
    assert len({g.text for g in one}) > 1  # different prompts, different answers: order is kept


def test_stop_tokens_and_settings(tiny):
    _, tok = tiny
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tok)
    assert decoding_settings(64, 8)["do_sample"] is False


def test_empty_prompt_list_is_an_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="no prompts"):
        generate(model, tok, [], max_new_tokens=4)


def test_dropping_finished_rows_gives_the_tokens_of_transformers_generate(tiny):
    """Rows that stop early leave the batch (and the KV cache); the others must not notice.

    A random model never says its end-of-turn token, so the stop tokens are taken from
    what it does say: a token one row emits early, another row's third token, so that
    rows finish at different steps while the rest keep decoding."""
    import torch

    from booster.models.generation import encode_prompts, greedy_batch, transformers_greedy

    model, tok = tiny
    model.eval()
    encoded = encode_prompts(tok, PROMPTS)
    width = max(map(len, encoded))
    input_ids = torch.full((len(encoded), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention[row, width - len(ids):] = 1
    free = transformers_greedy(model, input_ids, attention, max_new_tokens=16, stops=[-1])
    stops = sorted({free[0][1], free[2][3]})
    reference = transformers_greedy(model, input_ids, attention, max_new_tokens=16, stops=stops)
    lengths = sorted(len(r) for r in reference)
    assert lengths[0] < 16 and lengths[0] != lengths[-1]  # some rows really finish early
    widths = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, a, out: widths.append(out.shape[0]))
    try:
        assert greedy_batch(model, input_ids, attention, max_new_tokens=16, stops=stops) == reference
    finally:
        hook.remove()
    # The steps carry only the rows still decoding: the last step's batch is the rows that
    # were still going, not the full batch.
    assert widths[0] == len(PROMPTS)
    assert widths[-1] == sum(len(r) == len(max(reference, key=len)) for r in reference) < len(PROMPTS)
    # And with no row ever stopping, every row runs to max_new_tokens like transformers' loop.
    assert greedy_batch(model, input_ids, attention, max_new_tokens=16, stops=[-1]) == free


def test_generation_bench_compares_the_two_decoders_on_the_same_answers(tiny):
    from booster.bench.generation import bench_generation

    model, tok = tiny
    rows = bench_generation(model, tok, PROMPTS, batch_sizes=(1, 4), max_new_tokens=6, progress=False)
    assert [(r["batch_size"], r["decoder"]) for r in rows] == [(1, "greedy_batch"), (4, "greedy_batch"),
                                                                (4, "model.generate")]
    assert all(r["same_answers_as_first"] for r in rows)
    assert rows[-1]["greedy_batch_speedup"] > 0
