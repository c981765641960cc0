"""HotFlip for per-image text triggers under CLIP's contrastive loss.

The gradient of the batch loss w.r.t. the token embeddings at the trigger positions ranks every
allowed token by a first-order estimate of the loss change (−g·e); the best ``candidates`` per sample
are then scored exactly, greedily left to right over the trigger positions. Two selections:

- ``batch`` (the MEM reference's ``utils.get_best_candidates``): for each candidate rank ``r`` every
  sample takes its own ``r``-th candidate at once, the batch loss of that whole trial is computed, and
  the best rank is kept (rank 0, the current tokens, on ties), so a position's update never raises the
  batch loss;
- ``sample`` (ue-bench's earlier choice, not the reference's): each sample keeps the candidate that
  minimises the batch loss when its text alone changes (:func:`swap_losses`); the chosen swaps are
  then applied together, which can raise the batch loss.

Unlike the reference, which re-runs the whole model once per candidate, the exact scoring computes the
batch's image features once and runs the text tower on all candidates of a position in one batched
pass, over the positions up to the end-of-text token only (:func:`encode_text_to_eot`).
"""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F

from ue_bench.engine.device import autocast

from ._trigger import with_trigger


def swap_losses(image_feats: torch.Tensor, text_feats: torch.Tensor, cand_feats: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
    """``[B, K]``: the batch ``ClipLoss`` when text ``i`` alone is replaced by candidate ``cand_feats[i, k]``.

    ``image_feats``, ``text_feats``: normalised ``[B, D]``; ``cand_feats``: normalised ``[B, K, D]``.
    Exact, not first-order: row j's log-sum-exp is rebuilt from the row without column i plus the new
    entry, and column i's cross-entropy is recomputed from the new column.
    """
    b = image_feats.shape[0]
    logits = scale * image_feats @ text_feats.T                                   # [img j, txt i]
    diag = logits.diagonal()
    col_ce = logits.logsumexp(0) - diag                                           # [i]
    eye = torch.eye(b, dtype=torch.bool, device=logits.device)
    # excl[i, j]: log-sum-exp of image j's row without text i
    excl = logits.unsqueeze(0).masked_fill(eye.unsqueeze(1), float("-inf")).logsumexp(2)
    new_col = scale * torch.einsum("jd,ikd->ikj", image_feats, cand_feats)       # [i, k, j]
    own = new_col.diagonal(dim1=0, dim2=2).T                                      # [i, k]: image i vs its new text
    rows = torch.logaddexp(excl.unsqueeze(1), new_col).sum(2) - diag.sum() + diag.unsqueeze(1) - own
    cols = col_ce.sum() - col_ce.unsqueeze(1) + new_col.logsumexp(2) - own
    return (rows + cols) / (2 * b)


def token_embedding(model: torch.nn.Module) -> torch.nn.Embedding:
    """The text tower's token embedding of an open_clip model (``CLIP`` or ``CustomTextCLIP``)."""
    emb = getattr(model, "token_embedding", None) or getattr(getattr(model, "text", None), "token_embedding", None)
    if emb is None:
        raise TypeError(f"{type(model).__name__} has no token embedding to take HotFlip gradients from")
    return emb


def encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Normalised float text features ``[B, D]`` of token rows ``[B, L]`` (open_clip's ``encode_text``)."""
    with autocast(tokens.device):
        return F.normalize(model.encode_text(tokens).float(), dim=-1)


def encode_text_to_eot(model: torch.nn.Module, tokens: torch.Tensor, length: int) -> torch.Tensor:
    """:func:`encode_text` on the first ``length`` positions of the rows only (``length`` ≥ the last
    end-of-text position + 1 in the batch), for open_clip's ``CLIP`` models; others get :func:`encode_text`.

    CLIP's text transformer is causal and its features are pooled at the end-of-text token, so the
    padding after it never reaches them: this is open_clip's ``CLIP.encode_text`` with the positional
    embedding and the causal mask cut to ``length``. The features equal those of the whole rows up to
    float rounding (≤ 3e-6 measured on tiny-rn, tiny-vit and ViT-B-32), at a fraction of the text
    tower's cost (COCO-length captions with a 2-word trigger, 18–19 of 77 positions: 0.27–0.29 measured).
    """
    if (type(model) is not open_clip.CLIP or getattr(model, "text_pool_type", None) != "argmax"
            or model.attn_mask is None or not getattr(model.transformer, "batch_first", False)):
        return encode_text(model, tokens)  # another text tower, or an open_clip release laid out otherwise
    text = tokens[:, :length]
    with autocast(tokens.device):
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(text).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
        x = x[torch.arange(len(text), device=text.device), text.argmax(dim=-1)]
        proj = model.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
        return F.normalize(x.float(), dim=-1)


#: HotFlip's selections (module docstring): the reference's batch-shared rank, or per sample.
SELECTIONS = ("batch", "sample")


def hotflip(model: torch.nn.Module, image_feats: torch.Tensor, tokens: torch.Tensor, trigger: torch.Tensor,
            vocab: torch.Tensor, candidates: int, eot_id: int, select: str = "batch") -> tuple[torch.Tensor, torch.Tensor]:
    """One greedy left-to-right HotFlip pass over the trigger positions of a batch.

    ``image_feats``: normalised image features ``[B, D]`` (fixed); ``tokens``: caption rows ``[B, L]``
    the triggers are prefixed to; ``trigger``: ids ``[B, T]``; ``vocab``: allowed ids. Per position,
    the current tokens compete with each sample's top ``candidates`` tokens by gradient score, chosen by
    ``select`` (:data:`SELECTIONS`: ``batch``, the best candidate rank for the whole batch; ``sample``,
    each sample's best single swap), the current token winning ties. Returns the new trigger ids and the
    batch loss with them.
    """
    loss_fn = open_clip.ClipLoss()
    emb_module = token_embedding(model)
    vocab = vocab.to(tokens.device)
    scale = model.logit_scale.exp().detach().float()
    rows = with_trigger(tokens, trigger, eot_id)
    used = int(rows.argmax(-1).max()) + 1  # through the last end-of-text token: swapping words keeps it there

    def encode(r: torch.Tensor) -> torch.Tensor:
        return encode_text_to_eot(model, r, used)

    captured = {}

    def keep(_module, _inputs, output):
        captured["emb"] = output.detach().requires_grad_(True)
        return captured["emb"]

    handle = emb_module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            loss = loss_fn(image_feats, encode(rows), scale)
            (grad,) = torch.autograd.grad(loss, captured["emb"])
    finally:
        handle.remove()
    t = trigger.shape[1]
    table = emb_module.weight.detach()[vocab].float()                              # [V, D]
    scores = -grad[:, 1:1 + t].float() @ table.T                                   # [B, T, V]
    top = vocab[scores.topk(min(candidates, len(vocab)), dim=-1).indices]          # [B, T, K]
    trigger = trigger.clone()
    b, length = rows.shape
    with torch.no_grad():
        current = encode(rows)
        for p in range(t):
            options = torch.cat([trigger[:, p:p + 1], top[:, p]], dim=1)          # [B, K+1]
            k = options.shape[1]
            trial = rows.unsqueeze(1).repeat(1, k, 1)
            trial[:, :, 1 + p] = options
            feats = encode(trial.view(b * k, length)).view(b, k, -1)
            pick = torch.arange(b, device=rows.device)
            if select == "batch":
                rank = torch.stack([loss_fn(image_feats, feats[:, r], scale) for r in range(k)]).argmin()
                best = rank.expand(b)
            else:
                best = swap_losses(image_feats, current, feats, scale).argmin(1)
            trigger[:, p] = options[pick, best]
            rows[:, 1 + p] = trigger[:, p]
            current = feats[pick, best]
        loss_now = loss_fn(image_feats, current, scale)
    return trigger, loss_now
