"""Figures keep their text and data visible: legends cover no curve, the
heat map's colour-bar label lies inside the saved figure."""
import numpy as np
import pytest

plt = pytest.importorskip("matplotlib.pyplot")
from rnnpy import plot  # noqa: E402


def _covered_points(ax):
    """Points along the plotted lines that fall inside the legend box (display coords)."""
    fig = ax.figure
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent(fig.canvas.get_renderer()).padded(4)   # markers, line width
    hits = 0
    for line in ax.get_lines():
        xy = np.column_stack(line.get_data()).astype(float)
        t = np.linspace(0, 1, 50)[:, None, None]
        pts = ax.transData.transform((xy[:-1][None] * (1 - t) + xy[1:][None] * t).reshape(-1, 2))
        hits += int(((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1)
                     & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)).sum())
    return hits


def test_training_curves_legend_covers_no_curve():
    # accuracies that rise to 1.0 on the right: the old upper-right legend sat on them
    hist = {"loss": [0.6, 0.4, 0.2, 0.05, 0.01], "accuracy": [0.66, 0.82, 0.96, 1.0, 1.0]}
    other = {"loss": [0.4, 0.06, 0.0, 0.0, 0.0], "accuracy": [0.78, 0.99, 1.0, 1.0, 1.0]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")   # as in echo.ipynb
    plot.training_curves(other, ax=axes, label="RNN")
    plot.training_curves(hist, ax=axes, label="LSTM")
    for ax in axes:
        assert _covered_points(ax) == 0
    plt.close(fig)
    axes = plot.training_curves(hist)
    assert all(_covered_points(ax) == 0 for ax in axes)
    plt.close("all")


def test_echo_sweep_legend_covers_no_curve():
    sweep = {"RNN (relu)": {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.83, 5: 0.79, 6: 0.72, 8: 0.5, 10: 0.5, 12: 0.5, 15: 0.5},
             "LSTM": {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.9, 5: 0.84, 6: 0.79, 8: 0.73, 10: 0.7, 12: 0.64, 15: 0.52}}
    ax = plot.accuracy_vs_echo_step(sweep)
    assert _covered_points(ax) == 0
    plt.close("all")


def test_heatmap_colorbar_label_fits_in_the_figure(tmp_path):
    states = np.tanh(np.random.default_rng(0).standard_normal((60, 10)) * 2)
    ax = plot.state_heatmap(states, symbols="B" + "a" * 58 + "E", colorbar_label="tanh(c_t)")
    fig = ax.figure
    fig.canvas.draw()
    cbar_ax = fig.axes[-1]
    label = cbar_ax.yaxis.label
    assert label.get_text() == "tanh(c_t)"
    r = fig.canvas.get_renderer()
    lb, fb = label.get_window_extent(r), fig.bbox
    assert fb.x0 <= lb.x0 and lb.x1 <= fb.x1 and fb.y0 <= lb.y0 and lb.y1 <= fb.y1
    plt.close("all")
