"""Bad input is one clear line, exit code 2, and nothing written."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from ue_bench.cli import main

TINY = ["--dataset", "synthetic:size=16,test_size=8", "--victims", "tiny-rn:epochs=1,batch_size=8"]


def run(capsys, tmp_path, *args):
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--cache", str(tmp_path / "cache"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err, out


@pytest.mark.parametrize("args, needle", [
    (["--attacks", "mme"], "--attacks: unknown attack 'mme'"),
    (["--surrogates", "tiny-vitt"], "--surrogates: unknown victim 'tiny-vitt' (did you mean 'tiny-vit'?)"),
    (["--victims", "tiny-rn:epochs=0"], "out of bounds"),
    (["--victims", "tiny-rn:lr=fast"], "expects float"),
    (["--seeds", "0,x"], "--seeds"),
    (["--poison-ratio", "1.5"], "--poison-ratio"),
    (["--attacks", "tiny-rn"], "it is a victim"),
    (["--attacks", "ueraser"], "it is a defense; put it in --defenses"),
    (TINY[:2] + ["--victims", "tiny-rn:batch_size=64"],
     "--victims tiny-rn: batch_size 64 is larger than the training split"),
    (TINY + ["--attacks", "mem:batch_size=8"],
     "--surrogates tiny-rn: batch_size 64 is larger than the 16 protected images"),
    (["--preset", "huge"], "unknown preset 'huge'"),
])
def test_bad_flag_is_one_line_exit_2_nothing_written(capsys, tmp_path, args, needle):
    code, err, out = run(capsys, tmp_path, *args)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ue-bench: error:") and needle in err[0], err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_a_surrogate_that_no_attack_trains_is_not_held_to_the_split(capsys, tmp_path):
    """The default surrogate (batch 64) on a 16-image split: ``none,random`` never train it, so the run goes
    on (it was refused as '--victims/--surrogates tiny-rn', a victim nobody asked for)."""
    code, err, out = run(capsys, tmp_path, *TINY, "--attacks", "none,random", "--dry-run")
    assert code == 0 and not err, err


def test_another_command_in_the_same_out_is_warned_of(capsys, tmp_path):
    """A second, different command into one --out: one warning line naming the earlier cell; the report
    keeps both commands' cells and results.csv lists the second command's only (as the README says)."""
    args = [*TINY, "--threads", "1"]
    code, err, out = run(capsys, tmp_path, *args, "--attacks", "none")
    assert code == 0 and not [line for line in err if "warning" in line]
    (first,) = [p.stem for p in (out / "cells").glob("*.json")]
    code, err, out = run(capsys, tmp_path, *args, "--attacks", "none")   # the same command: a resume
    assert code == 0 and not [line for line in err if "warning" in line]
    code, err, out = run(capsys, tmp_path, *args, "--attacks", "random")
    warnings = [line for line in err if "warning" in line]
    assert code == 0 and len(warnings) == 1 and "holds 1 cell(s) of an earlier command" in warnings[0]
    assert first in warnings[0]
    assert list(pd.read_csv(out / "results.csv")["attack"]) == ["random"]
    assert set(pd.read_csv(out / "report" / "cells.csv")["attack"]) == {"none", "random"}


def test_unwritable_out_is_refused(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["run", "--out", str(blocker / "run"), "--cache", str(tmp_path / "cache"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--out" in err[0] and "cannot be created" in err[0]
    assert not (tmp_path / "cache").exists()


def test_bad_config_file_names_file_and_key(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('attacks = "none"\nvictim = "tiny-rn"\n')
    code, err, out = run(capsys, tmp_path, "-c", str(cfg))
    assert code == 2 and str(cfg) in err[0] and "unknown key 'victim'" in err[0]
    assert not out.exists()


def test_config_file_names_out_and_cache_relative_to_itself(capsys, tmp_path, monkeypatch):
    (tmp_path / "exp").mkdir()
    cfg = tmp_path / "exp" / "run.toml"
    cfg.write_text('dataset = "synthetic:size=16,test_size=8"\nvictims = "tiny-rn"\n'
                   'out = "runs/a"\ncache = "store"\n[params.victims."*"]\nepochs = 1\nbatch_size = 8\n')
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-c", str(cfg), "--threads", "1"]) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[1/1]")]
    title = "[1/1] synthetic:size=16,test_size=8 · none ← none · none · tiny-rn:epochs=1,batch_size=8 · seed 0 · ratio 0"
    assert len(progress) == 2 and progress[0] == title, progress  # the cell in words, not a dict; then its outcome
    r1 = pd.read_csv(tmp_path / "exp" / "runs" / "a" / "results.csv")["i2t_r1"].iloc[0]
    assert progress[1].startswith(f"[1/1] ok · i2t R@1 {r1:.3f} · mean recall ") and progress[1].endswith(" s")
    assert main(["run", "-c", str(cfg), "--threads", "1"]) == 0  # a rerun says it read the cell's record
    assert f"{title} · finished before" in capsys.readouterr().err.splitlines()
    assert (tmp_path / "exp" / "runs" / "a" / "results.csv").is_file() and (tmp_path / "exp" / "store").is_dir()
    assert main(["run", "-c", str(cfg), "--threads", "1", "--out", str(tmp_path / "b")]) == 0  # a flag wins
    assert (tmp_path / "b" / "results.csv").is_file()
    recorded = json.loads((tmp_path / "b" / "run.json").read_text())
    assert "out" not in recorded["config"] and str(cfg) in recorded["sources"]  # argv and sources say where
    capsys.readouterr()
    cfg.write_text('out = ["runs"]\n')
    assert main(["run", "-c", str(cfg)]) == 2
    assert "key 'out' expects a folder path" in capsys.readouterr().err


def test_help_and_list_show_no_rest_markup(capsys):
    """What a terminal prints is plain text: no ``literal`` or :role:`target` from the docstrings."""
    assert main(["list", "-v"]) == 0
    text = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    text += capsys.readouterr().out
    assert "mem-patterns" in text and "``" not in text and ":func:" not in text and ":class:" not in text


def test_list_verbose_shows_what_each_preset_sets(capsys):
    """``list -v`` names each preset's values in the flag's own syntax, under the plugin's parameters."""
    from ue_bench import registry

    assert main(["list", "attacks", "-v"]) == 0
    text = capsys.readouterr().out
    mem = text.split("\n  mem ", 1)[1].split("\n  mem-", 1)[0]
    tiny = registry.get("attacks", "mem").presets["tiny"]
    assert "      --preset tiny: " + ",".join(f"{k}={v}" for k, v in tiny.items()) in mem
    assert "--preset paper: " in mem and "grouping=random" in text.split("\n  mem-classwise ", 1)[1]


def test_a_reader_that_leaves_ends_the_output_quietly():
    """``ue-bench list -v | head -1``: the pipe closes before ue-bench writes; no traceback, exit 1."""
    proc = subprocess.Popen([sys.executable, "-m", "ue_bench.cli", "list", "-v"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()            # before the import is done, so every write finds the pipe closed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err and "Error" not in err, err


def test_list_shows_every_family(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for family in ("attacks:", "victims:", "datasets:", "defenses:", "reports:"):
        assert family in text
    rows = [row for row in text.splitlines() if row.startswith("  ")]
    starts = {len(row) - len(row[2:].split(" ", 1)[1].lstrip()) for row in rows}  # where each summary begins
    assert len(rows) > 30 and len(starts) == 1, rows  # one column in every family, the longest name included
