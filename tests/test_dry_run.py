"""``--dry-run``'s calibration: on the CPU a step is timed at a small batch and scaled, so planning a
paper-scale matrix never holds a paper-scale batch's activations (RN50 at batch 128 was OOM-killed at
21 GB by a fresh user's ``--preset paper --dry-run``)."""

import pytest
import torch

from ue_bench.bench import cost
from ue_bench.engine import device
from ue_bench.testing import tiny, tiny_data


def test_cpu_calibration_times_a_capped_batch_and_scales_it(monkeypatch):
    seen = []
    real = cost.clip_loss

    def recording(model, loss_fn, images, tokens):
        seen.append(images.shape[0])
        return real(model, loss_fn, images, tokens)

    monkeypatch.setattr(cost, "clip_loss", recording)
    split = tiny_data().train
    victim = tiny("victims", "tiny-rn")
    seconds = cost.step_seconds(victim, split, 64, torch.device("cpu"), steps=1)
    assert set(seen) == {device.CPU_CALIBRATION_BATCH} and seconds > 0
    assert device.calibration_batch(128, torch.device("cpu")) == device.CPU_CALIBRATION_BATCH
    assert device.calibration_batch(8, torch.device("cpu")) == 8
    assert device.calibration_batch(128, torch.device("cuda")) == 128


def test_dry_run_says_which_batch_was_timed(tmp_path, capsys):
    from ue_bench.cli import main

    code = main(["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--victims",
                 "tiny-rn:batch_size=32", "--threads", "1", "--out", str(tmp_path / "o"),
                 "--cache", str(tmp_path / "c"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "@32px/b32: " in out and "s/step (timed at b16, scaled)" in out, out


def test_dry_run_names_the_dataset_when_the_matrix_has_several(tmp_path, capsys):
    from ue_bench.cli import main

    code = main(["run", "--preset", "tiny", "--dataset",
                 "synthetic:size=32,test_size=8,synthetic:size=24,test_size=8", "--victims", "tiny-rn", "--threads", "1",
                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dataset" in out.splitlines()[1] and "size=24" in out, out


def test_dry_run_scales_a_victims_training_by_its_defenses_cost(tmp_path, capsys, monkeypatch):
    from ue_bench.bench import dry_run
    from ue_bench.cli import main

    monkeypatch.setattr(dry_run, "step_seconds", lambda *args, **kwargs: 1.0)  # one second per training step
    code = main(["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks", "none",
                 "--defenses", "none,adv-train:steps=10,ueraser", "--victims", "tiny-rn", "--threads", "1",
                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[2]: line.split() for line in out.splitlines() if line.split()[:2] == ["none", "none"]}
    train_s = {defense: float(row[-2].rstrip("s")) for defense, row in rows.items()}
    assert train_s["none"] > 0, out
    assert train_s["adv-train"] == round(4.0 * train_s["none"]), out    # 1 + 0.3 per PGD step, 10 steps
    assert train_s["ueraser"] == round(2.0 * train_s["none"]), out                 # 1 + (K - 1) x its share


def test_dry_run_without_out_names_no_run_folder(tmp_path, capsys, monkeypatch):
    from ue_bench.bench import dry_run
    from ue_bench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dry_run, "step_seconds", lambda *args, **kwargs: 1.0)
    code = main(["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks", "none",
                 "--victims", "tiny-rn", "--threads", "1", "--cache", str(tmp_path / "c"), "--dry-run"])
    first = capsys.readouterr().out.splitlines()[0]
    assert code == 0
    assert first.endswith("no --out, so a run would start in a new folder") and "runs/" not in first, first
    assert not (tmp_path / "runs").exists()


def test_default_transform_seconds_times_a_sample_and_scales_it(monkeypatch):
    import numpy as np

    from ue_bench.defense import Defense

    class Counting(Defense):
        transforms_data = True
        seen: list[int] = []

        def transform(self, split, seed):
            self.seen.append(len(split))
            return split

    split = tiny_data().train
    clock = iter([10.0, 10.5])  # the timed call takes half a second
    monkeypatch.setattr("ue_bench.defense.time.perf_counter", lambda: next(clock))
    estimate = Counting().transform_seconds(split)
    assert Counting.seen == [Defense.calibration_images] * 2, Counting.seen  # a warm-up call, then the timed one
    assert estimate == 0.5 * len(split) / Defense.calibration_images
    assert Defense().transform_seconds(split) == 0.0 and np.isfinite(estimate)


def test_dry_run_adds_a_defenses_transform_once_per_defended_data(tmp_path, capsys, monkeypatch):
    from ue_bench.bench import dry_run
    from ue_bench.cli import main
    from ue_bench.defenses.dvae import DVAE

    monkeypatch.setattr(dry_run, "step_seconds", lambda *args, **kwargs: 1.0)
    monkeypatch.setattr(DVAE, "transform_seconds", lambda self, split: 90.0)
    code = main(["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks", "none",
                 "--defenses", "none,dvae", "--victims", "tiny-rn,tiny-vit", "--threads", "1",
                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[1].split()
    rows = [dict(zip(header, line.split())) for line in out.splitlines()[2:] if line.split()[:1] == ["none"]]
    assert sorted((r["defense"].split(":")[0], r["victim"].split(":")[0], r["defend_est"]) for r in rows) == [
        ("dvae", "tiny-rn", "90s"), ("dvae", "tiny-vit", "0s"),  # one purified copy serves both victims
        ("none", "tiny-rn", "0s"), ("none", "tiny-vit", "0s")], out


def test_dry_run_counts_the_clean_surrogate_training_of_kmeans_tap_and_t2ue(tmp_path, capsys, monkeypatch):
    from ue_bench.bench import dry_run
    from ue_bench.cli import main
    from ue_bench.engine.training import steps_per_epoch

    monkeypatch.setattr(dry_run, "step_seconds", lambda *args, **kwargs: 1.0)  # one second per training step
    code = main(["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks",
                 "mem-classwise:surrogate_epochs=3,mem-classwise:surrogate_epochs=3,grouping=random,"
                 "ar:surrogate_epochs=3,ar:surrogate_epochs=3,grouping=random,tap:surrogate_epochs=3,t2ue",
                 "--surrogates", "tiny-rn:batch_size=8", "--victims", "tiny-rn", "--threads", "1",
                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[1].split()
    rows = [dict(zip(header, line.split())) for line in out.splitlines()[2:8]]
    kmeans_mem, random_mem, kmeans_ar, random_ar, tap, t2ue = (float(r["protect_est"].rstrip("s")) for r in rows)
    epoch = steps_per_epoch(32, 8)  # the surrogate's clean epoch at its own batch size (seconds, at 1 s a step)
    assert kmeans_mem == pytest.approx(random_mem + 3 * epoch, abs=1), out  # estimates print rounded to the second
    assert (kmeans_ar, random_ar) == (3 * epoch, 0), out
    assert tap > 3 * epoch and t2ue > epoch, out  # t2ue's tiny preset: one clean epoch
