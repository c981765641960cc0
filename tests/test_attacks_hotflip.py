"""HotFlip scoring: the closed-form swap losses and the greedy choices (the reference's batch-shared
candidate rank, and the per-sample swap) on a toy text tower."""

import open_clip
import torch
import torch.nn.functional as F

from ue_bench.attacks._hotflip import hotflip, swap_losses


class ToyText(torch.nn.Module):
    """A text tower with a token embedding (HotFlip's gradient source) and a nonlinear pooling."""

    def __init__(self, vocab: int = 40, dim: int = 8) -> None:
        super().__init__()
        self.token_embedding = torch.nn.Embedding(vocab, dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).unsqueeze(-1).float()
        return self.proj(torch.tanh(self.token_embedding(tokens)) * mask).sum(1)


def test_swap_losses_match_recomputing_the_batch_loss():
    g = torch.Generator().manual_seed(0)
    b, k, d = 7, 5, 6
    img = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    txt = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    cand = F.normalize(torch.randn(b, k, d, generator=g), dim=-1)
    scale = torch.tensor(9.0)
    got = swap_losses(img, txt, cand, scale)
    for i in range(b):
        for j in range(k):
            swapped = txt.clone()
            swapped[i] = cand[i, j]
            assert torch.allclose(got[i, j], open_clip.ClipLoss()(img, swapped, scale), atol=1e-5)


def toy_batch(seed: int, b: int = 6):
    torch.manual_seed(seed)
    model = ToyText().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    eot = 39
    img = F.normalize(torch.randn(b, 8), dim=-1)
    caps = torch.zeros(b, 10, dtype=torch.long)
    caps[:, 0], caps[:, 1:4], caps[:, 4] = 38, torch.randint(1, 30, (b, 3)), eot
    return model, img, caps, eot


def gradient_ranked(model, img, rows, vocab, k):
    """Each sample's top-k tokens at position 1 by HotFlip's first-order score, computed independently."""
    emb = model.token_embedding(rows).detach().requires_grad_(True)
    mask = (rows != 0).unsqueeze(-1).float()
    feats = F.normalize(model.proj(torch.tanh(emb) * mask).sum(1), dim=-1)
    (grad,) = torch.autograd.grad(open_clip.ClipLoss()(img, feats, model.logit_scale.exp()), emb)
    scores = -grad[:, 1] @ model.token_embedding.weight[vocab].T
    return vocab[scores.topk(k, dim=-1).indices]


def test_hotflip_batch_selection_keeps_the_best_candidate_rank_for_the_whole_batch():
    vocab = torch.arange(1, 30)
    for seed in range(4):
        model, img, caps, eot = toy_batch(seed)
        trig = torch.randint(1, 30, (len(img), 1))
        new, loss = hotflip(model, img, caps, trig, vocab, candidates=5, eot_id=eot, select="batch")
        scale = model.logit_scale.exp()

        def batch_loss(t):
            return open_clip.ClipLoss()(img, F.normalize(model.encode_text(torch.cat([caps[:, :1], t, caps[:, 1:-1]], 1)),
                                                         dim=-1), scale)

        rows = torch.cat([caps[:, :1], trig, caps[:, 1:-1]], 1)
        ranked = gradient_ranked(model, img, rows, vocab, 5)
        trials = [trig] + [ranked[:, r:r + 1] for r in range(5)]
        losses = torch.stack([batch_loss(t) for t in trials])
        assert torch.equal(new, trials[int(losses.argmin())])  # one rank for every sample, the best one
        assert loss <= batch_loss(trig) + 1e-6  # never raises the batch loss
        assert torch.isclose(loss, batch_loss(new), atol=1e-5)


def test_hotflip_sample_selection_picks_each_samples_loss_minimising_swap():
    model, img, caps, eot = toy_batch(0)
    b, vocab = len(img), torch.arange(1, 30)
    trig = torch.randint(1, 30, (b, 1))
    # with every allowed token as a candidate, the choice must be the exact per-sample minimiser
    new, loss = hotflip(model, img, caps, trig, vocab, candidates=len(vocab), eot_id=eot, select="sample")
    scale = model.logit_scale.exp()

    def feats(t):
        rows = torch.cat([caps[:, :1], t, caps[:, 1:-1]], 1)
        return F.normalize(model.encode_text(rows), dim=-1)

    base = feats(trig)
    for i in range(b):
        best, best_tok = open_clip.ClipLoss()(img, base, scale), int(trig[i, 0])
        for tok in vocab.tolist():
            t = trig.clone()
            t[i, 0] = tok
            swapped = base.clone()
            swapped[i] = feats(t)[i]
            value = open_clip.ClipLoss()(img, swapped, scale)
            if value < best - 1e-6:
                best, best_tok = value, tok
        assert int(new[i, 0]) == best_tok
    assert torch.isclose(loss, open_clip.ClipLoss()(img, feats(new), scale), atol=1e-5)


def test_hotflip_only_proposes_allowed_tokens_and_never_raises_single_swaps():
    torch.manual_seed(1)
    model = ToyText().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    b, eot = 5, 39
    vocab = torch.tensor([3, 5, 7, 11, 13, 17])
    img = F.normalize(torch.randn(b, 8), dim=-1)
    caps = torch.zeros(b, 12, dtype=torch.long)
    caps[:, 0], caps[:, 1:3], caps[:, 3] = 38, torch.randint(20, 30, (b, 2)), eot
    trig = vocab[torch.randint(len(vocab), (b, 3))]
    for select in ("batch", "sample"):
        new, _ = hotflip(model, img, caps, trig, vocab, candidates=2, eot_id=eot, select=select)
        assert torch.isin(new, vocab).all()


def test_text_up_to_the_end_of_text_token_is_the_whole_rows_text():
    from ue_bench import registry
    from ue_bench.attacks._hotflip import encode_text, encode_text_to_eot
    from ue_bench.attacks._trigger import with_trigger

    torch.manual_seed(0)
    victim = registry.create("victims", "tiny-rn", {})
    model, tok = victim.create_model(32, torch.device("cpu")).eval(), victim.tokenizer()
    rows = with_trigger(tok(["a red circle on a blue background", "two squares", "a small yellow triangle"]),
                        torch.tensor([[400, 401], [402, 403], [404, 405]]), tok.eot_token_id)
    used = int(rows.argmax(-1).max()) + 1
    assert used < rows.shape[1]  # the test cuts something
    with torch.no_grad():
        whole, cut = encode_text(model, rows), encode_text_to_eot(model, rows, used)
    assert cut.shape == whole.shape and torch.allclose(cut, whole, atol=1e-5)
    assert not torch.allclose(encode_text_to_eot(model, rows, used - 1), whole, atol=1e-3)  # the EOT matters
    toy = ToyText()  # not an open_clip CLIP: its own encode_text, the rows as they are
    toy_rows = torch.tensor([[1, 5, 6, 0, 0]])
    assert torch.equal(encode_text_to_eot(toy, toy_rows, 2), encode_text(toy, toy_rows))
