"""char-rnn on a wall-clock budget: the whole text, a held-out tail, a
checkpoint that --resume continues from, val_loss in nats/char."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnpy
from rnnpy.demos import char_rnn

SMALL = dict(hidden=16, layers=1, embedding=8, batch_size=8, seq_len=32, sample_length=20,
             prime="the ", progress=False)


@pytest.fixture
def text(tmp_path):
    """70,000 characters (more than the shipped sample's 60,000 cut) of a small alphabet."""
    rng = np.random.default_rng(0)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ", "dog "]
    body = "".join(words[i] for i in rng.integers(0, len(words), 20_000))[:70_000]
    p = tmp_path / "t.txt"
    p.write_text(body, encoding="utf-8")
    return str(p)


def test_budget_run_uses_the_whole_text_and_keeps_a_checkpoint(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    r = char_rnn.run(text, minutes=0.02, checkpoint=ck, **SMALL)
    assert r["chars"] == 70_000 and r["val_chars"] == 7_000
    assert 0 < r["val_loss"] < math.log(r["vocab"].size) and math.isfinite(r["val_loss"])
    assert r["chars_trained"] > 0 and r["epochs_done"] > 0 and len(r["sample"]) == 4 + 20
    model, extra = rnnpy.io.load_with_extra(ck)
    np.testing.assert_array_equal(model.flat_params, r["model"].flat_params)
    assert extra["kind"] == "char-rnn" and extra["chars_trained"] == r["chars_trained"]
    assert extra["vocab"] == r["vocab"].to_config()


def test_resume_continues_from_the_checkpoint(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    first = char_rnn.run(text, minutes=0.01, checkpoint=ck, **SMALL)
    saved, _ = rnnpy.io.load_with_extra(ck)
    # the width options are ignored on resume: the model comes from the file
    second = char_rnn.run(text, minutes=0.01, checkpoint=ck, resume=True,
                          **dict(SMALL, hidden=64))
    assert second["resumed"] and second["model"].get_config() == saved.get_config()
    assert second["chars_trained"] > first["chars_trained"]
    assert second["epochs_done"] > first["epochs_done"]
    assert not np.array_equal(second["model"].flat_params, saved.flat_params)


def test_resume_refuses_a_text_with_new_characters(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    char_rnn.run(text, minutes=0.005, checkpoint=ck, **SMALL)
    other = tmp_path / "other.txt"
    other.write_text("Zebras quietly xylophone!" * 100, encoding="utf-8")
    with pytest.raises(ValueError, match="^text: .*vocabulary"):
        char_rnn.run(str(other), minutes=0.005, checkpoint=ck, resume=True, **SMALL)


def test_bad_budget_options(text, tmp_path):
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(ValueError, match="^minutes"):
            char_rnn.run(text, minutes=bad, checkpoint=str(tmp_path / "c"), **SMALL)
    with pytest.raises(ValueError, match="^minutes"):
        char_rnn.run(text, resume=True, **SMALL)
    with pytest.raises(FileNotFoundError, match="^checkpoint: no model file at "):
        char_rnn.run(text, minutes=0.01, checkpoint=str(tmp_path / "none.rnnpy"), resume=True,
                     **SMALL)


def test_shipped_sample_keeps_its_cut():
    r = char_rnn.run(None, epochs=0, **SMALL)
    assert r["chars"] == char_rnn.SAMPLE_MAX_CHARS


def test_cli_minutes_and_resume(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    args = [sys.executable, "-m", "rnnpy", "char-rnn", "--text", text, "--minutes", "0.01",
            "--hidden", "16", "--layers", "1", "--checkpoint", ck, "--json", "--sample", "10", "--prime", "the "]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["val_loss"] > 0 and out["chars"] == 70_000 and os.path.exists(ck)
    p = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["resumed"] and again["chars_trained"] > out["chars_trained"]


def test_a_prime_outside_the_vocabulary_is_refused_before_training(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    with pytest.raises(ValueError, match="^prime: characters 'T'"):
        char_rnn.run(text, minutes=0.01, checkpoint=ck, **dict(SMALL, prime="The "))
    assert not os.path.exists(ck)   # refused before any work was done
    with pytest.raises(ValueError, match="^prime: characters 'QX'"):
        char_rnn.run(text, epochs=50, **dict(SMALL, prime="QX"))


def test_interrupt_keeps_the_work_and_a_blow_up_keeps_the_last_good_checkpoint(text, tmp_path,
                                                                               monkeypatch):
    ck = str(tmp_path / "ck.rnnpy")
    good = char_rnn.run(text, minutes=0.005, checkpoint=ck, **SMALL)
    calls = {"n": 0}
    real = char_rnn.clip_grad_norm

    def interrupt_on_5th(model, max_norm):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(model, max_norm)

    sizes = []   # characters of each step's targets (an epoch's last batch is shorter)
    real_loss = char_rnn.softmax_cross_entropy

    def counted_loss(out, y):
        sizes.append(int(np.size(y)))
        return real_loss(out, y)

    monkeypatch.setattr(char_rnn, "clip_grad_norm", interrupt_on_5th)
    monkeypatch.setattr(char_rnn, "softmax_cross_entropy", counted_loss)
    with pytest.raises(KeyboardInterrupt):
        char_rnn.run(text, minutes=1, checkpoint=ck, resume=True, **SMALL)
    _, extra = rnnpy.io.load_with_extra(ck)
    assert len(sizes) == 5 and 0 < min(sizes)
    assert extra["chars_trained"] == good["chars_trained"] + sum(sizes[:4])   # 4 steps were taken
    before = rnnpy.io.load_with_extra(ck)[0].flat_params.copy()

    def blow_up(model, max_norm):
        model.flat_params[...] = np.nan
        return 0.0

    monkeypatch.setattr(char_rnn, "clip_grad_norm", blow_up)
    with pytest.raises(FloatingPointError, match="not finite"):
        char_rnn.run(text, minutes=1, checkpoint=ck, resume=True, checkpoint_every=1e-9, **SMALL)
    np.testing.assert_array_equal(rnnpy.io.load_with_extra(ck)[0].flat_params, before)
