"""model.summary() (modules, output shapes, parameter counts) and the
metrics: callables, top-k accuracy, mae/mse for regression instead of accuracy."""
import numpy as np
import pytest

import rnnpy
from rnnpy.training import fit


def test_summary_lists_modules_shapes_and_counts():
    m = rnnpy.Sequential(rnnpy.Embedding(50, 8), rnnpy.LSTM(8, 16, num_layers=2, bidirectional=True),
                         rnnpy.LastStep(), rnnpy.Dense(32, 3))
    state = m.rng_state()
    lines = []
    text = m.summary(input_shape=(20,), print_fn=lines.append)
    assert lines == [text]
    rows = [ln.split() for ln in text.splitlines()]
    assert ["0", "Embedding", "(B,", "20,", "8)", "400"] in rows
    assert ["1", "LSTM", "(B,", "20,", "32)", f"{m.modules[1].num_params:,}"] in rows
    assert ["3", "Dense", "(B,", "3)", "99"] in rows
    assert f"total parameters: {m.num_params:,}" in text and m.num_params == 400 + 9728 + 99
    assert m.rng_state() == state and m.training
    assert "?" in m.summary(print_fn=None)
    with pytest.raises(ValueError, match="^input_shape: expected positive sizes"):
        m.summary(input_shape=(0,))


def _regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5, 2))
    y = x.sum(axis=(1, 2))[:, None]
    model = rnnpy.Sequential(rnnpy.RNN(2, 4, dtype="float64", seed=0), rnnpy.LastStep(dtype="float64"),
                             rnnpy.Dense(4, 1, dtype="float64", seed=1))
    return model, x, y


def test_mse_reports_mae_not_accuracy_and_callables_work():
    model, x, y = _regression()
    h = fit(model, (x, y), loss="mse", optimizer="sgd", epochs=1, verbose=0, shuffle=False)
    assert set(h.history) == {"loss", "mae"}
    pred = model.predict(x)
    res = model.evaluate(x, y, loss="mse", metrics=["mae", "mse", lambda t, p: float(np.max(np.abs(t - p)))])
    assert res["mae"] == pytest.approx(np.abs(pred - y).mean())
    assert res["mse"] == pytest.approx(res["loss"]) and res["mse"] == pytest.approx(((pred - y) ** 2).mean())
    assert res["<lambda>"] == pytest.approx(np.abs(pred - y).max())


def test_top_k_accuracy():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.02, 0.08], [0.2, 0.3, 0.5]])
    y = np.array([2, 1, 0])
    from rnnpy.train.metrics import _metric

    name, fn = _metric("top_2_accuracy")
    assert name == "top_2_accuracy" and fn(logits, y) == pytest.approx(1 / 3)
    assert _metric("top_3_accuracy")[1](logits, y) == 1.0
    assert _metric("accuracy")[1](logits, y) == 0.0
    # masked positions do not count
    assert fn(logits[None], y[None], np.array([[True, False, False]])) == 1.0
    with pytest.raises(ValueError, match="^metrics: unknown metric 'top_0_accuracy'"):
        _metric("top_0_accuracy")
