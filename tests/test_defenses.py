"""Defense plugins: determinism per seed, real JPEG, squeezes, caption cleaning, UEraser's schedule."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from open_clip import ClipLoss
from PIL import Image

from ue_bench import registry
from ue_bench.data import PairSplit
from ue_bench.defenses._augment import ViewParams, ueraser_view
from ue_bench.defenses.ueraser import per_sample_clip_loss, step_generator
from ue_bench.errors import UsageError
from ue_bench.engine.training import clip_loss, normalize

DATA_DEFENSES = ["jpeg", "grayscale", "bit-depth", "blur", "clean-captions"]
LOSS_DEFENSES = ["ueraser", "augment", "adv-train"]


@pytest.fixture(scope="module")
def small():
    return registry.create("datasets", "synthetic", {"size": 32, "test_size": 8}).load().train


def noisy(split: PairSplit, seed: int = 0) -> PairSplit:
    """``split`` with ±8 pixel-unit noise, as a protection would publish it."""
    rng = np.random.default_rng(seed)
    delta = rng.integers(-8, 9, size=split.images.shape)
    return PairSplit(np.clip(split.images.astype(int) + delta, 0, 255).astype(np.uint8), split.captions)


def test_every_defense_is_registered_with_a_summary_and_version():
    for name in DATA_DEFENSES + LOSS_DEFENSES:
        cls = registry.get("defenses", name)
        assert cls.summary() and isinstance(cls.version, str) and cls.version
        assert cls.transforms_data == (name in DATA_DEFENSES)


@pytest.mark.parametrize("name", DATA_DEFENSES)
def test_data_defenses_are_deterministic_and_leave_the_input_alone(name, small):
    split = noisy(small)
    before = split.images.copy()
    defense = registry.create("defenses", name)
    a, b = defense.transform(split, 0), defense.transform(split, 0)
    assert a.fingerprint() == b.fingerprint()
    assert a.images.dtype == np.uint8 and a.images.shape == split.images.shape
    np.testing.assert_array_equal(split.images, before)


def test_jpeg_is_a_real_encode_decode(small):
    split = noisy(small)
    out = registry.create("defenses", "jpeg", {"quality": 10}).transform(split, 0)
    assert not np.array_equal(out.images, split.images)
    for img, got in zip(split.images[:4], out.images[:4]):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=10)
        np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    hi = registry.create("defenses", "jpeg", {"quality": 95}).transform(split, 0)
    err = lambda x: np.abs(x.images.astype(int) - split.images.astype(int)).mean()  # noqa: E731
    assert err(hi) < err(out)


def test_grayscale_bit_depth_and_blur(small):
    split = noisy(small)
    gray = registry.create("defenses", "grayscale").transform(split, 0).images
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(gray[0, ..., 0], np.asarray(Image.fromarray(split.images[0]).convert("L")))
    squeezed = registry.create("defenses", "bit-depth", {"bits": 2}).transform(split, 0).images
    assert set(np.unique(squeezed)) <= {0, 85, 170, 255}
    blurred = registry.create("defenses", "blur", {"radius": 1.0}).transform(split, 0).images
    assert np.abs(np.diff(blurred.astype(int), axis=2)).mean() < np.abs(np.diff(split.images.astype(int), axis=2)).mean()


# --- caption cleaning -----------------------------------------------------------------------------

def test_clean_captions_leave_clean_synthetic_captions_alone(small):
    default = registry.create("datasets", "synthetic").load().train
    for split in (small, default):
        assert registry.create("defenses", "clean-captions").transform(split, 0).captions == split.captions


def test_clean_captions_strip_triggers_even_frequent_ones():
    full = registry.create("datasets", "synthetic", {"size": 200, "test_size": 8}).load().train
    rng = np.random.default_rng(0)
    rare = ["ggins", "vulcan", "tallahassee", "bbcqt", "sant", "medic"]
    # the first word is shared by a third of the images, as HotFlip's favourite tokens are
    triggers = [" ".join(["ggins" if i % 3 == 0 else str(rng.choice(rare))] + list(rng.choice(rare, 2)))
                for i in range(len(full))]
    triggered = PairSplit(full.images, [[f"{t} {c}" for c in caps] for t, caps in zip(triggers, full.captions)])
    assert registry.create("defenses", "clean-captions").transform(triggered, 0).captions == full.captions


def test_clean_captions_keep_shared_ordinary_words_and_never_empty():
    caps = [["a dog runs on grass", "a dog plays outside", "a dog in a park"],
            ["zyx a cat sleeps", "zyx a cat on a sofa", "zyx a small cat"],
            ["qqq", "qqq", "qqq"],
            ["a man walks his dog", "a man and a dog", "someone with a dog"]] * 5
    out = registry.create("defenses", "clean-captions").transform(PairSplit(np.zeros((20, 4, 4, 3), np.uint8), caps), 0)
    assert out.captions[0] == caps[0]                        # "a dog" is shared, but used in running text elsewhere
    assert out.captions[1] == ["a cat sleeps", "a cat on a sofa", "a small cat"]
    assert out.captions[2] == caps[2]                        # nothing would be left
    assert out.captions[3] == caps[3]


def test_clean_captions_single_caption_strip_the_leading_run_only():
    caps = [["qq yy a red square"], ["a blue circle"], ["a red circle zz"]] * 6
    out = registry.create("defenses", "clean-captions", {"min_count": 7}).transform(
        PairSplit(np.zeros((18, 4, 4, 3), np.uint8), caps), 0)
    assert out.captions[:3] == [["a red square"], ["a blue circle"], ["a red circle zz"]]


# --- training-time defenses -----------------------------------------------------------------------

def test_views_are_deterministic_per_seed_and_step_and_spare_the_global_rng():
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    a = ueraser_view(x, step_generator(0, 3))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, ueraser_view(x, step_generator(0, 3)))
    assert not torch.equal(a, ueraser_view(x, step_generator(1, 3)))
    assert not torch.equal(a, ueraser_view(x, step_generator(0, 4)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 and (a - x).abs().mean() > 0.05
    flat = ueraser_view(x, step_generator(0, 3), ViewParams(geometric=False))
    assert flat.shape == x.shape


def test_channel_shuffle_only_permutes_channels():
    """The switch changes coloured images and nothing else: on grey images a permutation is a no-op."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grey = x[:, :1].expand_as(x).contiguous()
    for batch, same in ((x, False), (grey, True)):
        never = ueraser_view(batch, step_generator(0, 3), ViewParams(channel_shuffle=0.0))
        always = ueraser_view(batch, step_generator(0, 3), ViewParams(channel_shuffle=1.0))
        assert torch.equal(never, always) is same


class Stub(torch.nn.Module):
    """A CLIP-shaped model (open_clip's encoders and forward) that counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(3 * 8 * 8, 16)
        self.text = torch.nn.Embedding(64, 16)
        self.logit_scale = torch.nn.Parameter(torch.tensor(10.0).log())
        self.calls = 0

    def encode_image(self, images, normalize=False):
        features = self.image(images.flatten(1))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens, normalize=False):
        features = self.text(tokens).mean(1)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images, tokens):
        self.calls += 1
        return {"image_features": self.encode_image(images, normalize=True),
                "text_features": self.encode_text(tokens, normalize=True), "logit_scale": self.logit_scale.exp()}


@pytest.mark.parametrize("name", LOSS_DEFENSES)
def test_training_losses_are_deterministic_per_seed(name):
    torch.manual_seed(0)
    model, x, tok = Stub(), torch.rand(8, 3, 8, 8), torch.randint(64, (8, 5))
    defense = registry.create("defenses", name)
    first = defense.batch_loss(0, total_steps=10)(model, x, tok, 2)
    first.backward()
    assert first.requires_grad
    assert torch.equal(first, defense.batch_loss(0, total_steps=10)(model, x, tok, 2))
    assert not torch.equal(first, defense.batch_loss(1, total_steps=10)(model, x, tok, 2))


def test_ueraser_descends_on_each_samples_worst_view_then_one_view():
    torch.manual_seed(0)
    model, x, tok = Stub(), torch.rand(8, 3, 8, 8), torch.randint(64, (8, 5))
    loss = registry.create("defenses", "ueraser", {"repeats": 4, "adversarial_frac": 0.5}).batch_loss(0, total_steps=10)
    value = loss(model, x, tok, 4)
    assert model.calls == 4                                   # K views, each with gradients
    gen = step_generator(0, 4)
    with torch.no_grad():
        views = [model(normalize(ueraser_view(x, gen)), tok) for _ in range(4)]
        per_sample = torch.stack([per_sample_clip_loss(v["image_features"], v["text_features"], v["logit_scale"])
                                  for v in views])            # [K, B]
        whole = [clip_loss(model, ClipLoss(), normalize(ueraser_view(x, step_generator(0, 4))), tok)]
    assert value.item() == pytest.approx(per_sample.amax(0).mean().item(), abs=1e-6)
    assert value.item() > per_sample.mean(1).max().item()    # above the worst whole view: the max is per sample
    assert len(set(per_sample.argmax(0).tolist())) > 1       # samples' worst views differ in this batch
    assert per_sample[0].mean().item() == pytest.approx(whole[0].item(), abs=1e-6)  # their mean is ClipLoss
    model.calls = 0
    loss(model, x, tok, 5)
    assert model.calls == 1                                   # past the adversarial share: one view


def test_ueraser_needs_the_run_length_for_a_partial_schedule():
    with pytest.raises(UsageError, match="total_steps"):
        registry.create("defenses", "ueraser").batch_loss(0)
    assert registry.create("defenses", "ueraser", {"adversarial_frac": 1.0}).batch_loss(0) is not None


def test_adversarial_training_descends_on_a_batch_moved_uphill_within_its_radius(small):
    victim = registry.create("victims", "tiny-rn", {})
    torch.manual_seed(0)
    model = victim.create_model(small.resolution, "cpu").eval()  # one mode throughout: batch norm as the attack sees it
    unit = torch.from_numpy(small.images[:16]).permute(0, 3, 1, 2).float() / 255
    tokens = victim.tokenizer()([caps[0] for caps in small.captions[:16]])
    clean = clip_loss(model, ClipLoss(), normalize(unit), tokens)
    attacked = registry.create("defenses", "adv-train", {"radius": 8, "steps": 3, "step": 2}).batch_loss(0, 10)
    moved = attacked(model, unit, tokens, 0)
    assert moved > clean and moved.requires_grad and not model.training
    assert all(q.requires_grad for q in model.parameters())
    model.train()
    attacked(model, unit, tokens, 1)
    assert model.training  # the attack's eval mode is undone
    unmoved = registry.create("defenses", "adv-train", {"radius": 0, "steps": 3}).batch_loss(0, 10)
    clean = clip_loss(model, ClipLoss(), normalize(unit), tokens)  # train mode: batch statistics
    torch.testing.assert_close(unmoved(model, unit, tokens, 0), clean)
