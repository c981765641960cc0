"""Text triggers in the published form: a vocabulary of safe tokens and trigger-prefixed token rows.

A trigger is only a trigger if a scraper's tokenizer reproduces it from the published caption text, so
candidates are restricted to whole-word, purely alphabetic BPE tokens that decode to a word and encode
back to the same single id. That excludes the start/end tokens (the end token would also move the
text-pooling point of CLIP's text tower), sub-word pieces that would merge with a neighbour, and
punctuation that the tokenizer may glue to other symbols.
"""

from __future__ import annotations

import re

import torch

_WORD = re.compile(r"^[a-z]+</w>$")


def trigger_vocab(tokenizer) -> torch.Tensor:
    """Sorted ids of the whole-word tokens that survive decode → re-tokenise on their own."""
    ids = []
    for piece, idx in tokenizer.encoder.items():
        if _WORD.match(piece) and tokenizer.encode(tokenizer.decode([idx]).strip()) == [idx]:
            ids.append(idx)
    return torch.tensor(sorted(ids), dtype=torch.long)


def trigger_text(tokenizer, ids: torch.Tensor) -> str:
    """The published text of one trigger (``ids``: 1-D token ids)."""
    return tokenizer.decode([int(i) for i in ids]).strip()


def with_trigger(tokens: torch.Tensor, trigger: torch.Tensor, eot_id: int) -> torch.Tensor:
    """Token rows of ``"<trigger> <caption>"`` built from the caption rows ``tokens[B, L]``.

    Equals what the tokenizer makes of the published string (checked by the tests): the trigger ids go
    right after the start token, and a row that no longer fits is cut and ends with the end token, as
    open_clip's tokenizer truncates.
    """
    t = trigger.shape[1]
    if t == 0:
        return tokens
    length = tokens.shape[1]
    out = torch.cat([tokens[:, :1], trigger.to(tokens.device), tokens[:, 1:length - t]], dim=1)
    cut = (tokens[:, length - t:] != 0).any(1)
    out[cut, -1] = eot_id
    return out
