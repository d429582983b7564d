"""char-rnn's time budget: its own defaults, and a learning rate that follows
the clock (warm-up, cosine decay to final_lr * lr at the deadline)."""
import math
import subprocess
import sys

import numpy as np
import pytest

from helpers import env_with_this_rnnpy
from rnnpy.demos import char_rnn
from rnnpy.demos.char_rnn import BUDGET_DEFAULTS, EPOCH_DEFAULTS, WARMUP, budget_lr
from rnnpy.io.checkpoint import _load_with_extra


@pytest.fixture
def text(tmp_path):
    rng = np.random.default_rng(1)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ", "dog "]
    p = tmp_path / "t.txt"
    p.write_text("".join(words[i] for i in rng.integers(0, len(words), 3000)), encoding="utf-8")
    return str(p)


def test_budget_lr_by_hand():
    lr, fin = 2e-3, 0.1
    # the warm-up: a straight ramp to the peak over the first WARMUP of the budget
    f = WARMUP / 4
    cos = fin + (1 - fin) * 0.5 * (1 + math.cos(math.pi * f))
    assert budget_lr(lr, f, "cosine", fin) == pytest.approx(lr * 0.25 * cos, rel=1e-12)
    # after it: the cosine from lr down to lr * final_lr
    assert budget_lr(lr, 0.5, "cosine", fin) == pytest.approx(lr * (fin + (1 - fin) * 0.5), rel=1e-12)
    assert budget_lr(lr, 1.0, "cosine", fin) == pytest.approx(lr * fin, rel=1e-12)
    assert budget_lr(lr, 3.0, "cosine", fin) == pytest.approx(lr * fin, rel=1e-12)   # past the deadline
    assert budget_lr(lr, WARMUP, "cosine", fin) == pytest.approx(
        lr * (fin + (1 - fin) * 0.5 * (1 + math.cos(math.pi * WARMUP))), rel=1e-12)
    assert 0 < budget_lr(lr, 0.0, "cosine", fin) < lr * 0.01   # a first step, but a small one
    for f in (0.0, 0.3, 1.0):
        assert budget_lr(lr, f, "constant", fin) == lr
    # decreasing after the warm-up
    fs = np.linspace(WARMUP, 1, 50)
    vals = [budget_lr(lr, float(f), "cosine", fin) for f in fs]
    assert all(a > b for a, b in zip(vals, vals[1:]))


def test_budget_run_takes_the_budget_defaults_and_ends_at_final_lr(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    r = char_rnn.run(text, minutes=0.01, checkpoint=ck, embedding=8, hidden=None,
                     batch_size=4, seq_len=16, sample_length=5, prime="the ", progress=False,
                     final_lr=0.25, lr=4e-3)
    lstm = r["model"].modules[1]
    assert lstm.hidden_size == BUDGET_DEFAULTS["hidden"]
    assert lstm.num_layers == BUDGET_DEFAULTS["layers"]
    _, extra = _load_with_extra(ck, "checkpoint")
    # the last step ran close to the deadline: its lr is near 4e-3 * 0.25
    assert extra["optimizer"]["lr"] == pytest.approx(4e-3 * 0.25, rel=0.05)
    assert extra["batch_size"] == 4 and extra["seq_len"] == 16


def test_constant_schedule_keeps_lr(text, tmp_path):
    ck = str(tmp_path / "ck.rnnpy")
    char_rnn.run(text, minutes=0.005, checkpoint=ck, embedding=8, hidden=8, batch_size=4,
                 seq_len=16, sample_length=5, prime="the ", progress=False,
                 schedule="constant", lr=1e-3)
    _, extra = _load_with_extra(ck, "checkpoint")
    assert extra["optimizer"]["lr"] == 1e-3


def test_epoch_runs_keep_the_epoch_defaults(text):
    r = char_rnn.run(text, epochs=0, sample_length=3, prime="the ", progress=False)
    lstm = r["model"].modules[1]
    assert (lstm.hidden_size, lstm.num_layers) == (EPOCH_DEFAULTS["hidden"], EPOCH_DEFAULTS["layers"])
    assert r["model"].modules[0].embedding_dim == EPOCH_DEFAULTS["embedding"]


@pytest.mark.parametrize("kw, name", [(dict(schedule="linear"), "schedule"),
                                      (dict(final_lr=1.5), "final_lr"),
                                      (dict(final_lr=True), "final_lr")])
def test_bad_schedule_options_are_named(text, tmp_path, kw, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        char_rnn.run(text, minutes=0.005, checkpoint=str(tmp_path / "c"), hidden=8, **kw)


@pytest.mark.parametrize("args, opt", [(["--schedule", "linear"], "--schedule"),
                                       (["--final-lr", "1.5"], "--final-lr"),
                                       (["--final-lr", "-0.1"], "--final-lr")])
def test_cli_refuses_bad_schedule_options(args, opt):
    p = subprocess.run([sys.executable, "-m", "rnnpy", "char-rnn", *args], capture_output=True,
                       text=True, timeout=120, env=env_with_this_rnnpy())
    assert p.returncode == 2 and opt in p.stderr


def test_cli_help_names_both_defaults():
    p = subprocess.run([sys.executable, "-m", "rnnpy", "char-rnn", "--help"], capture_output=True,
                       text=True, timeout=120, env=env_with_this_rnnpy())
    flat = " ".join(p.stdout.split())
    assert f"(default {EPOCH_DEFAULTS['hidden']}; {BUDGET_DEFAULTS['hidden']} with --minutes)" in flat


def test_dropout_reaches_the_top_layer_output():
    from rnnpy import Dropout
    from rnnpy.demos.char_rnn import build_model
    plain = build_model(10, hidden=6, layers=1, embedding=4, dropout=0.0, seed=0)
    assert [type(m).__name__ for m in plain.modules] == ["Embedding", "LSTM", "Dense"]
    m = build_model(10, hidden=6, layers=2, embedding=4, dropout=0.3, seed=0)
    assert [type(m).__name__ for m in m.modules] == ["Embedding", "LSTM", "Dropout", "Dense"]
    assert m.modules[1].dropout == 0.3 and m.modules[2].p == 0.3
    # training drops some of the top layer's outputs; evaluation does not
    x = np.arange(12).reshape(2, 6) % 10
    m.train()
    a, _ = m.forward(x)
    m.eval()
    b, _ = m.forward(x)
    c, _ = m.forward(x)
    assert not np.allclose(a, b) and np.array_equal(b, c)
    assert isinstance(m.modules[2], Dropout)
