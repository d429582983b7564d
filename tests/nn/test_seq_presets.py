"""The seq-classification level presets: each trains until the task is solved
(accuracy >= 0.99 on fresh sequences), the CLI uses them, overrides win."""
import json
import os
import subprocess
import sys

import pytest

from rnnpy.demos import seq_classification as sc


def _cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "rnnpy", "seq-classification", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_easy_preset_is_the_course_setup_and_solves_easy():
    assert sc.preset("easy") == dict(cell="lstm", hidden=4, optimizer="rmsprop", lr=1e-3,
                                     batch_size=32, init="uniform", clip=None, epochs=100)
    r = sc.solve("easy", seed=3, progress=False)
    assert r["solved"] and r["test_accuracy"] >= 0.99
    # stopped at the check that confirmed it, not at the epoch cap
    assert r["checks"][-1] == {"sequences_seen": r["sequences_seen"],
                               "test_accuracy": r["test_accuracy"]}
    assert r["sequences_seen"] < 100 * 31 * 32 and r["sequences_seen"] % 32 == 0
    assert all(c["test_accuracy"] < 0.99 for c in r["checks"][:-1])
    assert len(r["history"]["loss"]) == -(-r["sequences_seen"] // (31 * 32))


def test_unsolved_run_stops_at_the_epoch_cap_and_reports_it():
    r = sc.solve("hard", seed=0, epochs=1, hidden=2, progress=False)
    assert not r["solved"] and r["sequences_seen"] == 125 * 8
    assert r["test_accuracy"] < 0.99 and len(r["history"]["loss"]) == 1


def test_cli_uses_the_hard_preset():
    p = _cli("--difficulty", "hard", "--epochs", "1", "--json", "--seed", "0")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    want = dict(sc.preset("hard"), epochs=1)
    assert {k: out[k] for k in want} == want
    assert want["init"] == "chrono" and want["optimizer"] == "adam" and want["batch_size"] == 8
    assert out["layer_options"] == {"init": "chrono", "t_max": 111.0}
    assert out["sequences_seen"] <= 1000 and "test_accuracy" in out


def test_cli_overrides_win_over_the_preset():
    p = _cli("--difficulty", "hard", "--hidden", "6", "--lr", "0.005", "--batch-size", "10",
             "--init", "forget-bias", "--epochs", "1", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["hidden"], out["lr"], out["batch_size"], out["init"], out["epochs"]) == \
        (6, 0.005, 10, "forget-bias", 1)
    assert out["optimizer"] == "adam" and out["clip"] == 1.0          # the rest from the preset
    assert out["layer_options"] == {"forget_bias": 1.0}
    assert out["sequences_seen"] <= 100 * 10 and "model" not in out


def test_plain_rnn_at_a_chrono_level_gets_orthogonal():
    r = sc.solve("normal", cell="rnn", epochs=1, batch_size=50, progress=False)
    assert r["init"] == "orthogonal" and r["layer_options"] == {"recurrent_init": "orthogonal"}
    with pytest.raises(ValueError, match="init: 'chrono'.*RNN has no gates"):
        sc.solve("normal", cell="rnn", init="chrono", epochs=1, progress=False)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="^difficulty"):
        sc.preset("impossible")
    with pytest.raises(TypeError, match="unknown setting 'momentum'"):
        sc.preset("hard", momentum=0.9)
    with pytest.raises(ValueError, match="^init"):
        sc.solve("hard", init="glorot", progress=False)
    with pytest.raises(ValueError, match="^optimizer"):
        sc.solve("hard", optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="^epochs"):
        sc.solve("hard", epochs=-1, progress=False)
    with pytest.raises(ValueError, match="^window"):
        sc.solve("hard", window=0, progress=False)
    with pytest.raises(ValueError, match="^batch_size"):
        sc.solve("hard", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="^hidden_size"):
        sc.solve("hard", hidden=0, progress=False)


# The 1997 LSTM needed 31,390 training sequences on this level; the preset
# needs about 2,500 (README table). A few seconds on one core.
def test_hard_preset_solves_hard_within_the_1997_papers_count():
    r = sc.solve("hard", seed=123, progress=False)
    assert r["solved"] and r["sequences_seen"] <= 31_390 and r["test_accuracy"] >= 0.99


def test_nightmare_preset_solves_nightmare():
    r = sc.solve("nightmare", seed=123, progress=False)
    assert r["solved"] and r["sequences_seen"] <= 31_390 and r["test_accuracy"] >= 0.99
