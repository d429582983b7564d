"""Recurrent layers: RNN, LSTM (with optional peepholes) and GRU.

A layer stacks ``num_layers`` cells of ``rnnpy._core`` (two per layer when
bidirectional) and keeps every parameter in one flat vector, so that
optimizers and gradient checks walk one array; ``params`` and ``grads`` map
PyTorch's names to views of it. Each layer has an explicit ``forward`` and
``backward``: backward differentiates the most recent forward and ADDS the
parameter gradients into ``grads`` (``zero_grad`` is the caller's job, which
makes gradient accumulation and truncated BPTT free).

Shapes (D = 2 if bidirectional else 1):
    x      (B, T, I), or (T, B, I) with time_major=True
    out    (B, T, D*H), or (T, B, D*H)
    state  h (num_layers*D, B, H); for the LSTM a tuple (h, c)
"""
from __future__ import annotations

import math
import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .module import Module
from ._validate import (
    as_dtype,
    as_float_array,
    check_finite,
    check_shape,
    positive_int,
    probability,
    seed_value,
)

State = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]

# How a bidirectional layer combines its two directions' last-layer outputs:
# concatenated (PyTorch's way), summed, multiplied, averaged, or kept apart (None).
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def default_threads() -> int:
    """Threads a layer uses when not told: $RNNPY_NUM_THREADS if set, else 1.

    One thread by default because OpenMP workers busy-wait between the many
    short parallel regions of a time loop: on a machine whose cores are also
    busy with other work, a second thread that is descheduled makes every step
    wait for it (measured: a char-rnn epoch took 33 s on two threads against
    1.6 s on one while the other core was loaded). Ask for threads=2 (or set
    RNNPY_NUM_THREADS) when the cores are yours."""
    env = os.environ.get("RNNPY_NUM_THREADS")
    if env:
        try:
            return resolve_threads(int(env))
        except ValueError as exc:
            raise ValueError(f"RNNPY_NUM_THREADS: expected an int in [1, 64], got {env!r}") from exc
    return 1


def resolve_threads(threads: Optional[int]) -> int:
    """A thread count: None means default_threads(); else a positive int."""
    if threads is None:
        return default_threads()
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads: expected a positive int or None, got {threads!r}")
    if not 1 <= int(threads) <= 64:
        raise ValueError(f"threads: expected an int in [1, 64] or None, got {threads!r}")
    return int(threads)


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: the cell stack, the flat parameters,
    input checks, forward and backward through layers and directions."""

    is_recurrent = True
    accepts_lengths = True
    _has_cell_state = False  # LSTM: the state is (h, c)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = "float32",
        seed: Optional[int] = None,
        time_major: bool = False,
        threads: Optional[int] = None,
        merge_mode: Optional[str] = "concat",
    ) -> None:
        super().__init__()
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self._threads = resolve_threads(threads)
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional: expected a bool, got {bidirectional!r}")
        if not isinstance(time_major, (bool, np.bool_)):
            raise TypeError(f"time_major: expected a bool, got {time_major!r}")
        self.bidirectional = bool(bidirectional)
        self.time_major = bool(time_major)
        self.dropout = probability(dropout, "dropout")
        self.dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        self.num_directions = 2 if self.bidirectional else 1
        self._rng = np.random.default_rng(self.seed)
        # (input size, parameter count, [(name, offset, shape)]) of each cell, in storage order
        self._cell_specs = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            probe = self._make_cell(in_size)
            for _ in range(self.num_directions):
                self._cell_specs.append((in_size, probe.num_params, probe.layout()))
        self._cells: list = []
        self._last: Optional[dict] = None
        self._allocate()
        self.reset_parameters()

    # -- construction ----------------------------------------------------
    def _make_cell(self, input_size: int, **buffers: Any) -> Any:
        raise NotImplementedError

    def param_spec(self) -> List[Tuple[str, Tuple[int, ...]]]:
        spec = []
        for i, (_, _, layout) in enumerate(self._cell_specs):
            layer, d = divmod(i, self.num_directions)
            suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
            spec.extend((name + suffix, tuple(shape)) for name, _, shape in layout)
        return spec

    def _on_bind(self) -> None:
        # the C cells compute on views of the flat buffers, so they are remade
        self._cells, offset = [], 0
        for in_size, n, _ in self._cell_specs:
            self._cells.append(self._make_cell(in_size, params=self.flat_params[offset:offset + n],
                                               grads=self.flat_grads[offset:offset + n],
                                               threads=self._threads))
            offset += n
        self._last = None

    @property
    def threads(self) -> int:
        """Threads each cell's kernels may use; settable. Results do not depend on it."""
        return self._threads

    @threads.setter
    def threads(self, value: Optional[int]) -> None:
        self._threads = resolve_threads(value)
        for cell in self._cells:
            cell.threads = self._threads

    def reset_parameters(self) -> None:
        """Draws every parameter from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch does."""
        k = 1.0 / math.sqrt(self.hidden_size)
        self.flat_params[...] = self._rng.uniform(-k, k, self.flat_params.size)

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional,
                "dropout": self.dropout, "dtype": self.dtype.name, "seed": self.seed,
                "time_major": self.time_major, "merge_mode": self.merge_mode,
                **self._extra_config()}

    def _extra_config(self) -> dict:
        return {}

    # -- checks ---------------------------------------------------------------
    def _layout(self) -> str:
        return "(T, B, I)" if self.time_major else "(B, T, I)"

    def _state_array(self, obj: Any, name: str, B: int) -> Optional[np.ndarray]:
        if obj is None:
            return None
        arr = as_float_array(obj, name, self.dtype)
        LD = self.num_layers * self.num_directions
        check_shape(arr, name, (LD, B, self.hidden_size), "(num_layers*D, B, H)")
        check_finite(arr, name)
        return arr

    def _split_state(self, state: Any, name: str, B: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        if state is None:
            return None, None
        if self._has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name}: expected a tuple (h, c) or None, got {type(state).__name__}")
            return (self._state_array(state[0], f"{name}[0] (h)", B),
                    self._state_array(state[1], f"{name}[1] (c)", B))
        return self._state_array(state, name, B), None

    # -- forward and backward ---------------------------------------------
    def forward(self, x: Any, state: Optional[State] = None, lengths: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, State]:
        """Runs the stack over a batch of sequences.

        x: (B, T, I), or (T, B, I) with time_major=True.
        state: initial h (num_layers*D, B, H), for the LSTM (h, c); None = zeros.
        lengths: optional (B,) ints in [0, T]; steps t >= lengths[b] leave
            sequence b's state unchanged, output zeros and get no gradient.
        Returns out (B, T, D*H) (or (T, B, D*H)) and the final state. With
        bidirectional and merge_mode "sum", "mul" or "ave", out is (B, T, H), the
        two directions combined; with merge_mode None, a tuple of the two.
        Layers below the last always pass on both directions concatenated.
        """
        x = as_float_array(x, "x", self.dtype)
        check_shape(x, "x", (None, None, self.input_size), self._layout())
        B = x.shape[1] if self.time_major else x.shape[0]
        h0, c0 = self._split_state(state, "state", B)
        D, H, L = self.num_directions, self.hidden_size, self.num_layers
        batch_first = not self.time_major
        h_n = np.empty((L * D, B, H), dtype=self.dtype)
        c_n = np.empty((L * D, B, H), dtype=self.dtype) if self._has_cell_state else None
        masks = []
        merged: Optional[list] = None
        inp = x
        for layer in range(L):
            outs = []
            for d in range(D):
                i = layer * D + d
                cell = self._cells[i]
                h = None if h0 is None else h0[i]
                if self._has_cell_state:
                    c = None if c0 is None else c0[i]
                    out, h_n[i], c_n[i] = cell.forward(inp, h, c, lengths, reverse=d == 1,
                                                       batch_first=batch_first)
                else:
                    out, h_n[i] = cell.forward(inp, h, lengths, reverse=d == 1,
                                               batch_first=batch_first)
                outs.append(out)
            if D == 1:
                out = outs[0]
            elif layer == L - 1 and self.merge_mode != "concat":
                out = self._merge(outs[0], outs[1])
                merged = outs
            else:
                out = np.concatenate(outs, axis=2)
            if layer < L - 1 and self.training and self.dropout > 0:
                mask = self._dropout_mask(out.shape, layer)
                out = out * mask
                masks.append(mask)
            else:
                masks.append(None)
            inp = out
        self._last = {"B": B, "T": x.shape[0] if self.time_major else x.shape[1], "masks": masks,
                      "merged": merged}
        state_out: State = (h_n, c_n) if self._has_cell_state else h_n
        return inp, state_out

    def _merge(self, f: np.ndarray, b: np.ndarray) -> Any:
        if self.merge_mode == "sum":
            return f + b
        if self.merge_mode == "mul":
            return f * b
        if self.merge_mode == "ave":
            return (f + b) * self.dtype.type(0.5)
        return f, b   # merge_mode None: the two directions apart

    def _merged_grads(self, dout: Any, B: int, T: int) -> list:
        """Per-direction output gradients of the last layer from the gradient
        of its merged output (merge_mode other than concat)."""
        H = self.hidden_size
        shape = (T, B, H) if self.time_major else (B, T, H)
        symbols = "(T, B, H)" if self.time_major else "(B, T, H)"
        if self.merge_mode is None:
            if dout is None:
                return [None, None]
            if not isinstance(dout, (tuple, list)) or len(dout) != 2:
                raise TypeError("dout: expected a tuple (dout_forward, dout_backward) for "
                                f"merge_mode=None, got {type(dout).__name__}")
            grads = []
            for k, g in enumerate(dout):
                if g is not None:
                    g = as_float_array(g, f"dout[{k}]", self.dtype)
                    check_shape(g, f"dout[{k}]", shape, symbols)
                    check_finite(g, f"dout[{k}]")
                grads.append(g)
            return grads
        if dout is None:
            return [None, None]
        g = as_float_array(dout, "dout", self.dtype)
        check_shape(g, "dout", shape, symbols)
        check_finite(g, "dout")
        if self.merge_mode == "sum":
            return [g, g]
        if self.merge_mode == "ave":
            half = g * self.dtype.type(0.5)
            return [half, half]
        f, b = self._last["merged"]
        return [g * b, g * f]

    def _dropout_mask(self, shape: tuple, layer: int) -> np.ndarray:
        keep = 1.0 - self.dropout
        prev = self._last["masks"][layer] if (self._last and getattr(self, "_reuse_masks", False)) else None
        if prev is not None and prev.shape == shape:
            return prev
        return ((self._rng.random(shape) < keep) / keep).astype(self.dtype)

    def backward(self, dout: Any = None, dstate: Optional[State] = None) -> Tuple[np.ndarray, State]:
        """Gradients of the most recent forward.

        dout: like out, (B, T, D*H) or (T, B, D*H) (merged: (B, T, H); merge_mode
            None: a tuple of two, either may be None); None = zeros.
        dstate: gradient on the final state, like the returned state (LSTM:
            (dh, dc), either may be None); None = zeros.
        Returns dx like x and the gradient on the initial state, like state.
        Parameter gradients are added into ``grads``.
        """
        if self._last is None:
            raise RuntimeError("backward: nothing to differentiate; call forward first")
        B, T = self._last["B"], self._last["T"]
        D, H, L = self.num_directions, self.hidden_size, self.num_layers
        top: Optional[list] = None   # per-direction gradients of a merged last layer
        if D == 2 and self.merge_mode != "concat":
            top = self._merged_grads(dout, B, T)
            dout = None
        elif dout is not None:
            dout = as_float_array(dout, "dout", self.dtype)
            shape = (T, B, D * H) if self.time_major else (B, T, D * H)
            check_shape(dout, "dout", shape, "(T, B, D*H)" if self.time_major else "(B, T, D*H)")
            # checked here, before any cell adds into grads, so a bad call changes nothing
            check_finite(dout, "dout")
        dh_n, dc_n = self._split_state(dstate, "dstate", B)
        dh0 = np.empty((L * D, B, H), dtype=self.dtype)
        dc0 = np.empty((L * D, B, H), dtype=self.dtype) if self._has_cell_state else None
        grad = dout
        for layer in reversed(range(L)):
            dinp = None
            for d in range(D):
                i = layer * D + d
                if top is not None and layer == L - 1:
                    g = top[d]
                else:
                    g = None if grad is None else (grad if D == 1 else grad[:, :, d * H:(d + 1) * H])
                dh = None if dh_n is None else dh_n[i]
                if self._has_cell_state:
                    dc = None if dc_n is None else dc_n[i]
                    dx, dh0[i], dc0[i] = self._cells[i].backward(g, dh, dc)
                else:
                    dx, dh0[i] = self._cells[i].backward(g, dh)
                if dinp is None:
                    dinp = dx
                else:
                    dinp += dx
            if layer > 0 and self._last["masks"][layer - 1] is not None:
                dinp *= self._last["masks"][layer - 1]
            grad = dinp
        dstate0: State = (dh0, dc0) if self._has_cell_state else dh0
        return grad, dstate0

    def __repr__(self) -> str:
        extra = self._extra_repr()
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}{extra}, dtype='{self.dtype.name}')")

    def _extra_repr(self) -> str:
        return ""


class RNN(_RNNBase):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu.

    Parameters per layer k (and ``_reverse`` when bidirectional), as PyTorch's
    nn.RNN: weight_ih_l{k} (H, I or D*H), weight_hh_l{k} (H, H),
    bias_ih_l{k} (H,), bias_hh_l{k} (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bidirectional: bool = False, dropout: float = 0.0,
                 dtype: Any = "float32", seed: Optional[int] = None, time_major: bool = False,
                 threads: Optional[int] = None, merge_mode: Optional[str] = "concat") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                         time_major, threads, merge_mode)

    def _make_cell(self, input_size: int, **buffers: Any) -> Any:
        return _core.RNNCell(input_size, self.hidden_size, nonlinearity=self.nonlinearity,
                             dtype=self.dtype.name, **buffers)

    def _extra_repr(self) -> str:
        return f", nonlinearity='{self.nonlinearity}'"

    def _extra_config(self) -> dict:
        return {"nonlinearity": self.nonlinearity}


class LSTM(_RNNBase):
    """LSTM, gates i, f, g, o as in PyTorch's nn.LSTM:

        i = sig(a_i)  f = sig(a_f)  g = tanh(a_g)  o = sig(a_o)
        c_t = f*c_{t-1} + i*g       h_t = o*tanh(c_t)
        a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh

    With ``peephole=True`` (Gers & Schmidhuber) i and f also see c_{t-1} and
    o sees c_t through diagonal weights weight_peep_l{k} of shape (3, H)
    (rows i, f, o): a_i += p_i*c_{t-1}, a_f += p_f*c_{t-1}, a_o += p_o*c_t.

    Parameters per layer: weight_ih_l{k} (4H, I or D*H), weight_hh_l{k} (4H, H),
    bias_ih_l{k} (4H,), bias_hh_l{k} (4H,). The state is a tuple (h, c).
    """

    _has_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, peephole: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None, time_major: bool = False,
                 threads: Optional[int] = None, merge_mode: Optional[str] = "concat") -> None:
        if not isinstance(peephole, (bool, np.bool_)):
            raise TypeError(f"peephole: expected a bool, got {peephole!r}")
        self.peephole = bool(peephole)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                         time_major, threads, merge_mode)

    def _make_cell(self, input_size: int, **buffers: Any) -> Any:
        return _core.LSTMCell(input_size, self.hidden_size, peephole=self.peephole,
                              dtype=self.dtype.name, **buffers)

    def _extra_repr(self) -> str:
        return ", peephole=True" if self.peephole else ""

    def _extra_config(self) -> dict:
        return {"peephole": self.peephole}


class GRU(_RNNBase):
    """GRU, gates r, z, n as in PyTorch's nn.GRU:

        r = sig(W_ir x + b_ir + W_hr h + b_hr)   z = sig(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
        h_t = (1-z)*n + z*h_{t-1}

    Parameters per layer: weight_ih_l{k} (3H, I or D*H), weight_hh_l{k} (3H, H),
    bias_ih_l{k} (3H,), bias_hh_l{k} (3H,).
    """

    def _make_cell(self, input_size: int, **buffers: Any) -> Any:
        return _core.GRUCell(input_size, self.hidden_size, dtype=self.dtype.name, **buffers)
