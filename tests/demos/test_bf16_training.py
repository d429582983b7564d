"""Training with compute_dtype="bfloat16" learns like float32: the char-rnn
demo over ~310 steps and the temporal-order task at the easy level, each run
twice from the same seed, float32 and bfloat16 products. Skips without
AMX-BF16 or AVX512-BF16."""
import numpy as np
import pytest

from rnnpy.demos import char_rnn, seq_classification
from rnnpy.nn import precision

pytestmark = pytest.mark.skipif(precision.bf16_hardware() is None,
                                reason="needs AMX-BF16 or AVX512-BF16")


def test_char_rnn_loss_falls_like_float32():
    """6 epochs of 52 steps (hidden 64, one layer) on the shipped sample: the
    bf16 validation loss after each epoch within 0.02 nats/char of float32's
    (measured: within 0.002), and both far below the unigram entropy."""
    runs = {cd: char_rnn.run(hidden=64, layers=1, epochs=6, sample_length=0, progress=False,
                             compute_dtype=cd, seed=0) for cd in ("float32", "bfloat16")}
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert f32["compute_dtype"] == "float32" and bf16["compute_dtype"] == "bfloat16"
    v32, v16 = np.array(f32["history"]["val_loss"]), np.array(bf16["history"]["val_loss"])
    assert not np.array_equal(v32, v16)   # the products were rounded
    np.testing.assert_allclose(v16, v32, atol=0.02)
    assert v16[-1] < v16[0] - 0.4 and v16[-1] < bf16["unigram_entropy"] - 0.8
    assert abs(bf16["val_loss"] - f32["val_loss"]) < 0.02


def test_temporal_order_is_solved_in_bf16():
    """The easy level's preset (LSTM with 4 units): solved in bf16 after as
    many sequences as float32 takes (7552 from seed 3)."""
    runs = {cd: seq_classification.solve("easy", progress=False, compute_dtype=cd, seed=3)
            for cd in ("float32", "bfloat16")}
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert bf16["compute_dtype"] == "bfloat16" and bf16["solved"]
    assert bf16["test_accuracy"] >= 0.99
    assert abs(bf16["sequences_seen"] - f32["sequences_seen"]) <= 0.25 * f32["sequences_seen"]
    assert bf16["history"]["loss"] != f32["history"]["loss"]


def test_a_budgeted_char_rnn_keeps_or_changes_its_precision_on_resume(tmp_path):
    """A checkpoint keeps compute_dtype; a resumed run keeps it unless told."""
    ck = str(tmp_path / "ck.rnnpy")
    small = dict(hidden=16, layers=1, embedding=8, batch_size=8, seq_len=32, sample_length=0,
                 progress=False, max_chars=5000, checkpoint=ck)
    first = char_rnn.run(minutes=0.002, compute_dtype="bfloat16", **small)
    assert first["compute_dtype"] == "bfloat16"
    kept = char_rnn.run(minutes=0.002, resume=True, **small)
    assert kept["compute_dtype"] == "bfloat16"
    changed = char_rnn.run(minutes=0.002, resume=True, compute_dtype="float32", **small)
    assert changed["compute_dtype"] == "float32"
    assert changed["model"].modules[1].compute_dtype == "float32"


def test_the_echo_demo_takes_it_too():
    from rnnpy.demos import echo_demo

    r = echo_demo.run(epochs=1, series_length=200, progress=False, compute_dtype="bfloat16")
    assert r["compute_dtype"] == "bfloat16" and r["model"].modules[0].compute_dtype == "bfloat16"
    assert 0.0 <= r["test_accuracy"] <= 1.0 and np.isfinite(r["test_loss"])
