"""rnnpy.plot: what each function draws, the states it reads, and the inputs it refuses."""
import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import rnnpy  # noqa: E402
from rnnpy import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


HISTORY = {"loss": [1.2, 0.8, 0.5], "accuracy": [0.4, 0.7, 0.9],
           "val_loss": [1.3, 0.9, 0.6], "val_accuracy": [0.35, 0.65, 0.85]}


# -- training_curves ----------------------------------------------------------------------
def test_training_curves_draws_train_and_val_per_metric():
    axes = plot.training_curves(HISTORY)
    assert len(axes) == 2
    for ax, m in zip(axes, ("loss", "accuracy")):
        lines = ax.get_lines()
        assert len(lines) == 2
        np.testing.assert_allclose(lines[0].get_ydata(), HISTORY[m])
        np.testing.assert_allclose(lines[1].get_ydata(), HISTORY[f"val_{m}"])
        np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3])
        assert ax.get_ylabel() == m
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]


def test_training_curves_accepts_history_and_shares_axes():
    h = rnnpy.History()
    for e, (l, a) in enumerate(zip(HISTORY["loss"], HISTORY["accuracy"])):
        h.append(e, {"loss": l, "accuracy": a})
    _, axes = plt.subplots(1, 2)
    plot.training_curves(h, ax=axes, label="RNN")
    plot.training_curves(HISTORY, ax=axes, label="LSTM")
    assert len(axes[0].get_lines()) == 1 + 2    # RNN has no val curves
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["RNN train", "LSTM train", "LSTM val"]


def test_training_curves_single_metric_and_loss_only_history():
    (ax,) = plot.training_curves({"loss": [3.0, 2.0]})   # default skips missing accuracy
    assert len(ax.get_lines()) == 1
    fig, ax = plt.subplots()
    assert plot.training_curves(HISTORY, metrics="accuracy", ax=ax) == [ax]
    assert ax.get_ylim() == (0.0, 1.02)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(history=[1, 2]), TypeError, "history"),
    (dict(history=HISTORY, metrics=("loss", "perplexity")), KeyError, "perplexity"),
    (dict(history=HISTORY, metrics=()), ValueError, "metrics"),
    (dict(history={"loss": []}), ValueError, "history"),
    (dict(history=HISTORY, ax="left"), ValueError, "ax"),
])
def test_training_curves_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        plot.training_curves(**kwargs)


def test_training_curves_wrong_number_of_axes():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax: expected 2"):
        plot.training_curves(HISTORY, ax=ax)


# -- state_heatmap ------------------------------------------------------------------------
def test_state_heatmap_rows_are_units_and_ticks_are_symbols():
    rng = np.random.default_rng(0)
    states = np.tanh(rng.standard_normal((7, 4)))
    ax = plot.state_heatmap(states, symbols="BbXcYaE", title="h")
    (image,) = ax.get_images()
    assert image.get_array().shape == (4, 7)            # one row per unit, time on x
    np.testing.assert_allclose(image.get_array(), states.T)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("BbXcYaE")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
    assert ax.get_title() == "h"
    assert image.get_clim() == (-1.0, 1.0)


def test_state_heatmap_given_axes_labels_and_wide_range():
    _, ax = plt.subplots()
    states = np.array([[3.0, -1.0], [0.0, 0.5]])
    assert plot.state_heatmap(states, symbols=["X", "Y"], ax=ax, unit_labels=["c0", "c1"]) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c0", "c1"]
    assert ax.get_images()[0].get_clim() == (-3.0, 3.0)   # symmetric, covers the values
    ax2 = plot.state_heatmap(states[None])                 # a batch of one is fine
    assert ax2.get_images()[0].get_array().shape == (2, 2)
    assert ax2.get_xlabel() == "step"


@pytest.mark.parametrize("kwargs, match", [
    (dict(states=np.zeros(5)), "states: expected shape"),
    (dict(states=np.zeros((0, 3))), "states: expected shape"),
    (dict(states=np.full((2, 2), np.nan)), "states: expected finite"),
    (dict(states=np.zeros((3, 2)), symbols="ab"), "symbols: expected 3"),
    (dict(states=np.zeros((3, 2)), unit_labels=["u"]), "unit_labels: expected 2"),
    (dict(states=np.zeros((3, 2)), ax=5), "ax"),
    (dict(states=[[1, 2], [3]]), "states"),
])
def test_state_heatmap_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot.state_heatmap(**kwargs)


def test_state_heatmap_refuses_text():
    with pytest.raises(TypeError, match="states: expected numbers"):
        plot.state_heatmap(np.array([["a", "b"]]))


# -- hidden_states ------------------------------------------------------------------------
def _seq_model(cell):
    from rnnpy.demos.seq_classification import build_model

    return build_model(cell, hidden=5, seed=3, dtype="float64")


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_hidden_states_is_the_layer_output(cell):
    model = _seq_model(cell)
    x = np.random.default_rng(1).standard_normal((9, 8))
    h = plot.hidden_states(model, x)
    assert isinstance(h, np.ndarray) and h.shape == (9, 5)
    out, _ = model.modules[0].forward(x[None])
    np.testing.assert_allclose(h, out[0])


def test_hidden_states_lstm_gives_h_and_c_step_by_step():
    model = _seq_model("lstm")
    layer = model.modules[0]
    x = np.random.default_rng(2).standard_normal((1, 6, 8))
    h, c = plot.hidden_states(model, x)
    assert h.shape == c.shape == (6, 5)
    for t in range(1, 7):      # the state after t steps of a fresh run
        out, (h_t, c_t) = layer.forward(x[:, :t])
        np.testing.assert_allclose(c[t - 1], c_t[0, 0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h[t - 1], h_t[0, 0], rtol=1e-12, atol=1e-14)
    assert not np.allclose(c, h)


def test_hidden_states_lengths_and_embedding_and_mode():
    emb = rnnpy.Sequential(rnnpy.Embedding(10, 3, seed=0), rnnpy.Dropout(0.5),
                           rnnpy.LSTM(3, 4, num_layers=2, seed=1), rnnpy.Dense(4, 10, seed=2))
    ids = np.array([1, 4, 2, 9, 0, 0])
    h, c = plot.hidden_states(emb, ids, lengths=4)
    assert h.shape == c.shape == (4, 4)
    assert emb.training and all(m.training for m in emb.modules)   # mode restored
    emb.eval()
    out, (h_n, c_n) = emb.modules[2].forward(emb.modules[0].forward(ids[None, :4]))
    np.testing.assert_allclose(h, out[0], rtol=1e-6)
    np.testing.assert_allclose(c[-1], c_n[-1, 0], rtol=1e-6)   # the top layer's cell


def test_hidden_states_bad_input():
    model = _seq_model("lstm")
    with pytest.raises(ValueError, match="x: expected one sequence"):
        plot.hidden_states(model, np.zeros((2, 5, 8)))
    with pytest.raises(ValueError, match="lengths"):
        plot.hidden_states(model, np.zeros((5, 8)), lengths=6)
    with pytest.raises(ValueError, match="lengths"):
        plot.hidden_states(model, np.zeros((5, 8)), lengths=[2, 3])
    with pytest.raises(TypeError, match="model"):
        plot.hidden_states(rnnpy.Dense(3, 2), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="x"):       # wrong input size: the layer names x
        plot.hidden_states(model, np.zeros((5, 7)))
    bi = rnnpy.LSTM(3, 2, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        plot.hidden_states(bi, np.zeros((4, 3)))


# -- accuracy_vs_echo_step ----------------------------------------------------------------
def test_accuracy_vs_echo_step_one_line_per_cell_and_chance():
    results = {"rnn": {1: 1.0, 3: 0.9, 8: 0.55}, "lstm": {1: 1.0, 3: 1.0, 8: 0.97}}
    ax = plot.accuracy_vs_echo_step(results)
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 3, 8])
    np.testing.assert_allclose(lines[0].get_ydata(), [1.0, 0.9, 0.55])
    np.testing.assert_allclose(lines[2].get_ydata(), [0.5, 0.5])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rnn", "lstm", "chance"]
    assert [int(t) for t in ax.get_xticks()] == [1, 3, 8]


def test_accuracy_vs_echo_step_sorts_steps_and_uses_given_axes():
    _, ax = plt.subplots()
    assert plot.accuracy_vs_echo_step({"gru": {5: 0.3, 2: 1.0}}, ax=ax) is ax
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [2, 5])
    assert ax.get_ylim()[0] <= 0.28


@pytest.mark.parametrize("results, match", [
    ({}, "results: expected a non-empty"),
    ([0.5], "results: expected"),
    ({"rnn": {}}, r"results\['rnn'\]"),
    ({"rnn": {1.5: 0.9}}, "echo steps"),
    ({"rnn": {1: 1.5}}, r"results\['rnn'\]\[1\]"),
    ({"rnn": {1: "high"}}, r"results\['rnn'\]\[1\]"),
])
def test_accuracy_vs_echo_step_bad_input(results, match):
    with pytest.raises(ValueError, match=match):
        plot.accuracy_vs_echo_step(results)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r'pip install "rnnpy\[plot\]"'):
        plot.state_heatmap(np.zeros((2, 2)))
