"""The threat model: a victim never starts from its surrogate's weights, and `--preset paper` is the
reference's victim protocol.

The data owner may pick the surrogate's architecture, never the trainer's initial weights, seed, batch
order or views (README, *Threat model*). These tests would fail on the code before 2026-12-03, where a
tiny-rn surrogate and a tiny-rn victim at the same seed were equal tensor for tensor.
"""

import dataclasses

import open_clip
import pytest
import torch

from ue_bench import registry

from ue_bench.bench import stages
from ue_bench.cli.protect import trainer_args
from ue_bench.bench.runconfig import build_run_config
from ue_bench.seeds import ROLES, role_seed, state_sha256, trainer_seed
from ue_bench.engine.training import cosine_with_warmup, steps_per_epoch, train_clip

CPU = torch.device("cpu")


def builtin_surrogate_attacks() -> list[str]:
    """Every built-in attack that builds a model at its tiny preset (third-party attacks may build theirs as
    they like; ``lowfreq-words`` reads only the surrogate's tokenizer)."""
    names = []
    for name in registry.usable("attacks"):
        cls = registry.get("attacks", name)
        tiny = registry.create("attacks", name, cls.presets.get("tiny", {}))
        if cls.__module__.startswith("ue_bench.") and tiny.trains_surrogate():
            names.append(name)
    return names


@pytest.fixture(scope="module")
def split():
    return registry.create("datasets", "synthetic", {"size": 32, "test_size": 8}).load().train


@pytest.fixture(scope="module")
def tiny_rn():
    return registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 16})


def test_role_seeds_are_distinct_and_stable():
    seeds = {role: role_seed(0, role) for role in ROLES}
    assert len(set(seeds.values())) == len(ROLES)
    assert all(0 <= s < 2 ** 63 for s in seeds.values())
    assert role_seed(0, "victim-init") != role_seed(1, "victim-init")
    assert seeds == {role: role_seed(0, role) for role in ROLES}  # a function of (seed, role) alone
    assert 0 <= trainer_seed(0) < 2 ** 31 and trainer_seed(0) not in (0, seeds["surrogate-init"])


@pytest.mark.parametrize("attack", builtin_surrogate_attacks())
def test_a_surrogate_attack_and_a_same_architecture_victim_start_apart(split, tiny_rn, attack):
    torch.set_num_threads(1)
    atk = registry.create("attacks", attack, registry.get("attacks", attack).presets.get("tiny", {}))
    prot = atk.protect(split, tiny_rn, 0, CPU)
    surrogate_init = prot.meta["surrogate_init_sha256"]
    assert surrogate_init == tiny_rn.initial_model(split.resolution, 0, CPU)[1]  # the model it built
    victim_init = stages.initial_victim(tiny_rn, 0, split.resolution, CPU)[1]
    assert victim_init != surrogate_init
    assert stages.initial_victim(tiny_rn, 1, split.resolution, CPU)[1] != victim_init


def test_the_surrogate_is_no_plain_small_seed_trainer_model(tiny_rn):
    """open_clip_train seeds torch with ``--seed`` (+ rank) before it builds the model: a trainer run with
    ``--seed 0`` ... ``7``, or with the seed protect prints, must not build the surrogate."""
    surrogate = tiny_rn.initial_model(32, 0, CPU)[1]
    for seed in [*range(8), trainer_seed(0)]:
        torch.manual_seed(seed)
        model = open_clip.create_model("tiny-rn", pretrained=None, force_image_size=32, output_dict=True)
        assert state_sha256(model) != surrogate


def test_sharing_the_surrogates_init_is_an_explicit_labelled_upper_bound(tiny_rn):
    leak = registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 16, "surrogate_init": True})
    assert stages.initial_victim(leak, 0, 32, CPU)[1] == tiny_rn.initial_model(32, 0, CPU)[1]
    assert "surrogate_init=True" in leak.label()
    assert not registry.get("victims", "tiny-rn").Params().surrogate_init  # never the default


def test_the_printed_trainer_command_is_seeded_apart_from_the_protection():
    victim = registry.create("victims", "tiny-rn", {})
    manifest = {"open_clip_args": [], "n_images": 640, "n_captions": 3200}
    args = trainer_args(manifest, victim, CPU, 0)
    assert args[args.index("--seed") + 1] == str(trainer_seed(0))
    assert args[args.index("--beta2") + 1] == str(victim.params.beta2)


PAPER_VICTIM = {  # the reference's src/parser.py defaults and src/data.py's fixed view
    "epochs": 32, "epoch_unit": "captions", "batch_size": 128, "lr": 5e-4, "weight_decay": 0.2, "beta1": 0.9,
    "beta2": 0.999, "adam_eps": 1e-8, "decay_embeddings": True, "warmup_steps": 10000, "augment": "none",
}


@pytest.mark.parametrize("victim", ["rn50", "rn101", "vitb32", "tiny-rn", "tiny-vit"])
def test_preset_paper_trains_victims_with_the_reference_protocol(victim):
    cfg = build_run_config({"victims": victim}, None, "paper")
    params = dataclasses.asdict(cfg.plugins("victims")[0].params)
    assert {k: params[k] for k in PAPER_VICTIM} == PAPER_VICTIM
    default = dataclasses.asdict(build_run_config({"victims": victim}, None, None).plugins("victims")[0].params)
    assert default["augment"] == "openclip" and default["epoch_unit"] == "images"  # the realistic trainer


def test_preset_paper_sets_the_reference_attack_loops():
    cfg = build_run_config({"attacks": "mem,em,tap"}, None, "paper")
    mem, em, tap = (dataclasses.asdict(a.params) for a in cfg.plugins("attacks"))
    assert {k: mem[k] for k in ("outer_iters", "surrogate_steps", "hotflip_iters", "candidates", "pgd_steps",
                                "batch_size", "hotflip_select", "shuffle")} == {
        "outer_iters": 20, "surrogate_steps": 200, "hotflip_iters": 5, "candidates": 16, "pgd_steps": 8,
        "batch_size": 128, "hotflip_select": "batch", "shuffle": True}
    assert (em["outer_iters"], em["surrogate_steps"], em["pgd_steps"], em["batch_size"]) == (5, 50, 8, 128)
    assert (tap["pgd_steps"], tap["batch_size"], tap["step"], tap["eps"]) == (8, 128, 1, 8)


def test_an_epoch_over_caption_rows_visits_every_row_once(split):
    """``epoch_unit=captions``: one step per batch of caption rows, each row once (the reference's epoch)."""
    rows_seen, steps = [], []
    tok = registry.create("victims", "tiny-rn", {}).tokenizer()
    model = registry.create("victims", "tiny-rn", {}).create_model(split.resolution)

    def record(m, unit, tokens, step):
        rows_seen.extend(map(tuple, tokens.tolist()))
        steps.append(step)
        return m.logit_scale * 0.0 + unit.sum() * 0.0

    train_clip(model, tok, split, epochs=1, batch_size=8, lr=1e-4, weight_decay=0.0, warmup=0.0, seed=0,
               device=CPU, epoch_unit="captions", batch_loss=record)
    rows = sum(len(c) for c in split.captions)
    assert rows > len(split) and rows % 8 != 1  # several captions per image; no one-pair batch dropped
    assert len(steps) == steps_per_epoch(rows, 8)
    assert sorted(rows_seen) == sorted(map(tuple, tok([c for caps in split.captions for c in caps]).tolist()))


def test_warmup_in_steps_may_outlast_the_run():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, total_steps=100, warmup_frac=0.05, warmup_steps=1000)
    rates = []
    for _ in range(100):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(1 / 1000) and rates[-1] == pytest.approx(100 / 1000)  # never at the peak


def test_the_upper_bound_is_refused_on_another_architecture_and_never_scored(tmp_path, capsys):
    from ue_bench.cli import main
    from ue_bench.reports.tables import leaderboard
    from ue_bench.results import load_run

    base = ["run", "--preset", "tiny", "--cache", str(tmp_path / "cache"), "--threads", "1", "--attacks", "none,mem",
            "--surrogates", "tiny-rn", "--dataset", "synthetic:size=32,test_size=8"]
    assert main([*base, "--out", str(tmp_path / "vit"), "--victims", "tiny-vit:surrogate_init=true", "--dry-run"]) == 2
    assert "surrogate_init=true shares the surrogate's initial weights" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "rn"), "--victims", "tiny-rn,tiny-rn:surrogate_init=true"]) == 0
    run = load_run(tmp_path / "rn")
    assert len(run.frame) == 4  # both victims trained and in the retrieval table
    board = leaderboard(run)
    scored = [c for c in board.columns if c.startswith("frac_") and not c.endswith(("_half", "_n"))]
    assert len(board) == 1 and len(scored) == 1 and "surrogate_init" not in scored[0]
