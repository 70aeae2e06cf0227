"""Batched greedy generation: left padding, KV cache, prompts sorted by length.

Sorting by prompt length keeps padding (wasted compute) small within a batch, and going
longest first makes an out-of-memory failure show up in the first batch, not the last.
Decoding is greedy so that every score is reproducible; the settings actually used are
returned by :func:`decoding_settings` for the protocol record.

The decoding loop is written out here instead of calling ``model.generate`` for one reason:
a row that has produced its stop token leaves the batch (its KV-cache rows are dropped), so
a batch no longer runs at full width until its longest answer ends. On the CPU presets,
where a decoding step costs in proportion to the rows it carries, ``model.generate`` used
under half the decoded slots on the over-refusal prompts. Each row's arithmetic is the
same as in ``model.generate`` (same prefill, positions from the attention mask, argmax of
float32 logits); a test checks the tokens are identical to it. In float32 that holds on real
models too (SmolLM2: 100 of 100 answers identical). In bfloat16 a narrower batch can round a
product differently, as padding already can, and flip a rare greedy choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache


@dataclass
class Generation:
    text: str
    new_tokens: int
    """Generated tokens up to and including the stop token (what the speed benchmark counts)."""


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus the chat template's end-of-turn token, when the tokenizer has one."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def decoding_settings(max_new_tokens: int, batch_size: int) -> dict:
    return {"strategy": "greedy", "do_sample": False, "max_new_tokens": max_new_tokens,
            "batch_size": batch_size, "padding": "left", "kv_cache": True}


def encode_prompts(tokenizer, conversations: list[list[dict]]) -> list[list[int]]:
    """Chat-template each conversation (ending before the assistant's answer) into token ids.

    A tokenizer without a chat template (a base model) gets the turns' contents joined by blank
    lines, with the tokenizer's own special tokens (BOS)."""
    ids = []
    for conv in conversations:
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            ids.append(tokenizer("\n\n".join(m["content"] for m in conv) + "\n\n")["input_ids"])
    return ids


@torch.inference_mode()
def greedy_batch(model, input_ids: torch.Tensor, attention: torch.Tensor, *, max_new_tokens: int,
                 stops: list[int]) -> list[list[int]]:
    """Greedy continuation of one left-padded batch; each row's tokens end at its first stop token.

    Positions follow the attention mask (padding does not advance them), as ``model.generate``
    computes them; a finished row is dropped from the inputs and the KV cache."""
    rows = input_ids.shape[0]
    tokens: list[list[int]] = [[] for _ in range(rows)]
    live = list(range(rows))  # batch rows still decoding, in the order the tensors hold them
    stop = torch.tensor(stops, device=input_ids.device)
    cache = DynamicCache(config=model.config)
    ids, mask = input_ids, attention
    positions = (attention.long().cumsum(-1) - 1).masked_fill(attention == 0, 0)
    for step in range(max_new_tokens):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1].float()
        chosen = logits.argmax(-1)
        for row, token in zip(live, chosen.tolist()):
            tokens[row].append(token)
        going = ~torch.isin(chosen, stop)
        if step + 1 == max_new_tokens or not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            live = [live[k] for k in keep.tolist()]
            chosen, mask, positions = chosen[keep], mask[keep], positions[keep]
        ids = chosen[:, None]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = positions[:, -1:] + 1
    return tokens


@torch.inference_mode()
def transformers_greedy(model, input_ids: torch.Tensor, attention: torch.Tensor, *, max_new_tokens: int,
                        stops: list[int]) -> list[list[int]]:
    """The same continuation by transformers' own ``model.generate``, which keeps finished rows in
    the batch until the longest ends: the reference :func:`greedy_batch` is tested and benchmarked
    against (``booster bench generation``)."""
    from transformers import GenerationConfig

    filler = next((t for t in stops if t >= 0), 0)  # what finished rows are fed: cut off below, never read
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=filler, eos_token_id=stops, use_cache=True)
    out = model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
    rows = []
    for new in out[:, input_ids.shape[1]:].tolist():
        n = next((k + 1 for k, t in enumerate(new) if t in stops), len(new))
        rows.append(new[:n])
    return rows


@torch.inference_mode()
def generate(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int = 128,
             batch_size: int = 16, desc: str = "generating", progress: bool = True,
             decode=greedy_batch) -> list[Generation]:
    """Greedy answers to ``conversations`` (lists of chat messages), in input order.

    ``decode``: the batch decoder, :func:`greedy_batch` (:func:`transformers_greedy` to compare)."""
    if not conversations:
        raise ValueError("no prompts to generate for")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer)
    device = next(model.parameters()).device
    encoded = encode_prompts(tokenizer, conversations)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    results: list[Generation | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(order), desc=desc, unit="prompt", disable=not progress, leave=False)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):  # left padding: the answer starts at column `width`
                input_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
                attention[row, width - len(encoded[i]):] = 1
            out = decode(model, input_ids.to(device), attention.to(device),
                         max_new_tokens=max_new_tokens, stops=stops)
            for row, i in enumerate(chunk):
                new = out[row]
                results[i] = Generation(tokenizer.decode(new, skip_special_tokens=True).strip(), len(new))
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
    return results  # type: ignore[return-value]


def answer(model, tokenizer, prompts: str | list[str], *, system: str | None = None,
           max_new_tokens: int = 64, batch_size: int = 16) -> list[str]:
    """Greedy answers to plain user prompts (convenience over :func:`generate`)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    head = [{"role": "system", "content": system}] if system else []
    conversations = [head + [{"role": "user", "content": p}] for p in prompts]
    gens = generate(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    progress=False)
    return [g.text for g in gens]
