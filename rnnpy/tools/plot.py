"""Plots for training runs and recurrent states (needs matplotlib: pip install "rnnpy[plot]").

    from rnnpy import plot
    plot.training_curves(history)                      # loss and accuracy, train and val
    h, c = plot.hidden_states(model, x_row)            # (T, H) each, for an LSTM
    plot.state_heatmap(np.tanh(c), symbols="BbXc...E")  # one row per unit, time on x
    plot.accuracy_vs_echo_step(echo_demo.sweep())      # one line per cell

matplotlib is imported inside the functions, so ``import rnnpy`` never needs
it. Every function draws into the Axes it is given, or into a new figure, and
returns what it drew into.
"""
from __future__ import annotations

import numbers
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .._validate import array as _array


__all__ = ["training_curves", "state_heatmap", "hidden_states", "accuracy_vs_echo_step"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('rnnpy.plot needs matplotlib; install it with: pip install "rnnpy[plot]"'
                          ) from None
    return plt


def _is_axes(ax: Any) -> bool:
    from matplotlib.axes import Axes

    return isinstance(ax, Axes)


# -- training curves ---------------------------------------------------------------------
_LEGEND_SPOTS = ("upper right", "lower right", "upper left", "lower left", "center right",
                 "center left", "upper center", "lower center")


def _place_legend(ax: Any) -> Any:
    """A legend that covers no data: the first corner (then edge) of the Axes
    whose legend box no plotted line passes through, else outside, right of
    the Axes. Lines are checked along their segments, not only at markers."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    paths = []
    for line in ax.get_lines():
        xy = np.column_stack(line.get_data()).astype(float)
        if len(xy) == 0:
            continue
        if len(xy) > 1:   # points along each segment, so a line crossing the box counts
            t = np.linspace(0.0, 1.0, 25)[:, None, None]
            xy = (xy[:-1][None] * (1 - t) + xy[1:][None] * t).reshape(-1, 2)
        paths.append(ax.transData.transform(xy))
    pts = np.concatenate(paths) if paths else np.zeros((0, 2))
    for loc in _LEGEND_SPOTS:
        leg = ax.legend(loc=loc)
        box = leg.get_window_extent(renderer).padded(6)   # marker radius and line width
        inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
                  & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
        if not inside.any():
            return leg
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _history_dict(history: Any) -> Mapping[str, Sequence[float]]:
    h = getattr(history, "history", history)
    if not isinstance(h, Mapping):
        raise TypeError(f"history: expected an rnnpy.History or a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    return h


def training_curves(history: Any, metrics: Union[str, Sequence[str]] = ("loss", "accuracy"),
                    ax: Any = None, label: Optional[str] = None) -> List[Any]:
    """Per-epoch curves of each metric: the training value, and val_<metric>
    (dashed, same colour) when the history has it.

    history: an rnnpy.History (what fit returns) or a dict name -> list of values
        (History.history, or the "history" entry of a demo's result).
    metrics: the names to plot, one Axes each; names missing from history are an
        error, except that the default ("loss", "accuracy") skips a missing accuracy.
    ax: an Axes (one metric) or a sequence of Axes, one per metric; default: a
        new figure with the metrics side by side.
    label: a prefix for the legend ("LSTM" -> "LSTM train", "LSTM val"), so
        several runs can share the same Axes.
    Returns the list of Axes, one per metric.
    """
    h = _history_dict(history)
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = list(metrics)
    if not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"metrics: expected one or more metric names, got {metrics!r}")
    available = sorted(k for k in h if not k.startswith("val_"))
    if metrics == ["loss", "accuracy"] and "accuracy" not in h:
        metrics = ["loss"]
    for m in metrics:
        if m not in h:
            raise KeyError(f"metrics: {m!r} is not in the history; it has {available}")
        if len(h[m]) == 0:
            raise ValueError(f"history: {m!r} has no values (was the model trained for 0 epochs?)")
    plt = _pyplot()
    if ax is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
        axes = list(axes[0])
        fig.set_layout_engine("tight")
    else:
        axes = [ax] if _is_axes(ax) else list(ax)
        if len(axes) != len(metrics) or not all(_is_axes(a) for a in axes):
            raise ValueError(f"ax: expected {len(metrics)} matplotlib Axes (one per metric "
                             f"{metrics}), got {ax!r}")
    from matplotlib.ticker import MaxNLocator

    prefix = f"{label} " if label else ""
    for a, m in zip(axes, metrics):
        train = np.asarray(h[m], dtype=float)
        epochs = np.arange(1, len(train) + 1)
        (line,) = a.plot(epochs, train, marker="." if len(train) <= 30 else None,
                         label=f"{prefix}train")
        if f"val_{m}" in h and len(h[f"val_{m}"]):
            val = np.asarray(h[f"val_{m}"], dtype=float)
            a.plot(np.arange(1, len(val) + 1), val, linestyle="--", color=line.get_color(),
                   label=f"{prefix}val")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("epoch")
        a.set_ylabel(m)
        if m == "accuracy":
            a.set_ylim(0.0, 1.02)
        a.grid(True, alpha=0.3)
    if ax is None:   # lay the figure out first: the legend's spot depends on the Axes' size
        axes[0].figure.get_layout_engine().execute(axes[0].figure)
    for a in axes:
        _place_legend(a)
    return axes


# -- states over a sequence --------------------------------------------------------------
def state_heatmap(states: Any, symbols: Optional[Sequence[str]] = None, ax: Any = None,
                  title: Optional[str] = None, unit_labels: Optional[Sequence[str]] = None,
                  colorbar_label: str = "value") -> Any:
    """A heat map of a recurrent state over one sequence: one row per unit, time on x.

    states: (T, H) values of each unit at each step (e.g. from hidden_states).
    symbols: the T input symbols (a string or a sequence), shown as x tick labels.
    unit_labels: H row labels (default 0..H-1, the units' indices).
    colorbar_label: the label of the colour bar drawn beside a new figure
    (laid out so that it fits inside the figure).
    The colour scale is symmetric around 0 and spans at least [-1, 1] (the range of
    h and of tanh(c)): red positive, blue negative.
    Returns the Axes.
    """
    try:
        s = np.asarray(states)
    except ValueError as exc:
        raise ValueError(f"states: expected a (T, H) array, got {type(states).__name__} ({exc})"
                         ) from None
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"states: expected shape (T, H) with T, H > 0, got {tuple(s.shape)}")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise TypeError(f"states: expected numbers, got dtype {s.dtype}")
    s = s.astype(float)
    if not np.isfinite(s).all():
        raise ValueError("states: expected finite values, got NaN or inf")
    T, H = s.shape
    if symbols is not None:
        symbols = list(symbols)
        if len(symbols) != T:
            raise ValueError(f"symbols: expected {T} symbols (one per step of states (T, H) = "
                             f"{(T, H)}), got {len(symbols)}")
    if unit_labels is not None:
        unit_labels = [str(u) for u in unit_labels]
        if len(unit_labels) != H:
            raise ValueError(f"unit_labels: expected {H} labels (one per unit of states (T, H) = "
                             f"{(T, H)}), got {len(unit_labels)}")
    plt = _pyplot()
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(min(16.0, 2.0 + 0.16 * T), 0.9 + 0.35 * H),
                               layout="constrained")
    elif not _is_axes(ax):
        raise ValueError(f"ax: expected a matplotlib Axes or None, got {type(ax).__name__}")
    lim = max(1.0, float(np.abs(s).max()))
    image = ax.imshow(s.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                      interpolation="nearest")
    if symbols is not None:
        ax.set_xticks(np.arange(T))
        ax.set_xticklabels([str(c) for c in symbols], fontsize="small" if T > 30 else None)
        ax.tick_params(axis="x", length=0)
    else:
        ax.set_xlabel("step")
    ax.set_yticks(np.arange(H))
    ax.set_yticklabels(unit_labels if unit_labels is not None else [str(i) for i in range(H)])
    ax.set_ylabel("unit")
    if title:
        ax.set_title(title)
    if own_figure:
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03, label=colorbar_label)
    return ax


def _first_recurrent(model: Any) -> Tuple[List[Any], Any]:
    """The modules before the first recurrent layer, and that layer."""
    from ..nn.stack import _RNNBase

    if isinstance(model, _RNNBase):
        return [], model
    mods = getattr(model, "modules", None)
    if isinstance(mods, (list, tuple)):
        before: List[Any] = []
        for m in mods:
            if isinstance(m, _RNNBase):
                return before, m
            if getattr(m, "modules", None) is not None:   # a nested Sequential
                inner_before, layer = _first_recurrent(m)
                if layer is not None:
                    return before + inner_before, layer
            before.append(m)
    raise TypeError(f"model: expected an rnnpy.Sequential holding an RNN, LSTM or GRU layer "
                    f"(or such a layer), got {type(model).__name__}")


def hidden_states(model: Any, x: Any, lengths: Optional[int] = None
                  ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """The state of the first recurrent layer of ``model`` at every step of one sequence.

    model: an rnnpy.Sequential (the modules before its first RNN/LSTM/GRU, such
        as an Embedding, are applied first) or a recurrent layer.
    x: one sequence, (T, I) (or (T,) ids for an Embedding), or a batch of one (1, T, ...).
    lengths: the sequence's real length n (an int, or a one-element array):
        only its first n steps are run.
    Returns h, (T, D*H): the layer's output, h_t of its top layer at each step;
    for an LSTM the tuple (h, c), c (T, H) the top layer's cell state, found by
    running the layer one step at a time with its state carried (unidirectional
    only). Runs in evaluation mode (no dropout) and restores the model's mode.
    """
    before, layer = _first_recurrent(model)
    xb = _array(x, "x")
    want = 2 if (before and type(before[0]).__name__ == "Embedding") else 3
    if xb.ndim == want - 1:
        xb = xb[None]
    if xb.ndim != want or xb.shape[0] != 1:
        shape = "(T,) ids or (1, T)" if want == 2 else "(T, I) or (1, T, I)"
        raise ValueError(f"x: expected one sequence of shape {shape}, got {tuple(xb.shape)}")
    T = xb.shape[1]
    if lengths is not None:
        n = _array(lengths, "lengths").reshape(-1)
        if n.size != 1 or not np.issubdtype(n.dtype, np.integer) or not 0 < int(n[0]) <= T:
            raise ValueError(f"lengths: expected one integer in [1, T] = [1, {T}], got {lengths!r}")
        xb = xb[:, :int(n[0])]

    modes = [(m, m.training) for m in before + [layer]]
    try:
        for m, _ in modes:
            m.eval()
        for m in before:
            xb = m.forward(xb, None) if m.accepts_lengths else m.forward(xb)
        if layer.time_major:
            xb = np.swapaxes(xb, 0, 1)
        out, _ = layer.forward(xb)
        h = np.asarray(out)[:, 0] if layer.time_major else np.asarray(out)[0]
        if not layer.family.has_cell_state:   # RNN, GRU: the state is h alone
            return h
        if layer.num_directions != 1:
            raise ValueError("model: the cell state of a bidirectional LSTM cannot be read step "
                             "by step; use its output h (a GRU/RNN-style call) instead")
        c, state = [], None
        steps = xb.shape[0] if layer.time_major else xb.shape[1]
        for t in range(steps):
            xt = xb[t:t + 1] if layer.time_major else xb[:, t:t + 1]
            _, state = layer.forward(xt, state)
            c.append(np.array(state[1][-1, 0]))
        return h, np.stack(c)
    finally:
        for m, mode in modes:
            m.train(mode)


# -- the echo sweep -----------------------------------------------------------------------
def accuracy_vs_echo_step(results: Mapping[str, Mapping[int, float]], ax: Any = None) -> Any:
    """Test accuracy against echo_step, one line per cell, with the chance level (0.5).

    results: {cell: {echo_step: accuracy}}, as rnnpy.demos.echo_demo.sweep returns.
    Returns the Axes.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results: expected a non-empty dict {{cell: {{echo_step: accuracy}}}}, "
                         f"got {results!r}")
    curves = []
    for cell, acc in results.items():
        if not isinstance(acc, Mapping) or not acc:
            raise ValueError(f"results[{cell!r}]: expected a non-empty dict {{echo_step: accuracy}}, "
                             f"got {acc!r}")
        steps = sorted(acc)
        for k in steps:
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
                raise ValueError(f"results[{cell!r}]: expected non-negative integer echo steps, "
                                 f"got {k!r}")
            v = acc[k]
            if not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"results[{cell!r}][{k}]: expected an accuracy in [0, 1], got {v!r}")
        curves.append((str(cell), steps, [float(acc[k]) for k in steps]))
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    elif not _is_axes(ax):
        raise ValueError(f"ax: expected a matplotlib Axes or None, got {type(ax).__name__}")
    for cell, steps, accs in curves:
        ax.plot(steps, accs, marker="o", label=cell)
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="chance")
    all_steps = sorted({k for _, steps, _ in curves for k in steps})
    ax.set_xticks(all_steps)
    ax.set_xlabel("echo_step")
    ax.set_ylabel("test accuracy")
    lowest = min(min(accs) for _, _, accs in curves)
    ax.set_ylim(min(0.4, lowest - 0.02), 1.02)
    ax.grid(True, alpha=0.3)
    _place_legend(ax)
    return ax
