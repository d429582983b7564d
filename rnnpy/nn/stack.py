"""_RNNBase: what RNN, LSTM and GRU share. A stack of ``num_layers`` C cells (two
per layer when bidirectional) over one flat parameter vector; input and state
checks; forward and backward through the layers and directions; dropout between
layers, zoneout and recurrent-dropout masks; merging of the two directions.
The cell-specific part (which C type, which options) is the family's entry in
rnnpy.cells and the small subclasses in rnnpy.nn.recurrent.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._validate import (array, as_dtype, as_float_array, check_finite, check_shape, choice, positive_int,
                         probability, seed_value)
from ..cells import Family
from .init import _init_options, _orthogonal
from .locking import run_locked
from .module import Module
from .grad_mode import grad_enabled
from .precision import resolve_compute_dtype
from .threads import resolve_threads


State = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


# How a bidirectional layer combines its two directions' last-layer outputs:
# concatenated (PyTorch's way), summed, multiplied, averaged, or kept apart (None).
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _zoneout_rates(value: Any, cell_state: bool) -> Tuple[float, float]:
    """(rate on h, rate on c) from a probability, or for the LSTM a pair."""
    if cell_state and isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"zoneout: expected a probability or a pair (h, c), got {value!r}")
        return probability(value[0], "zoneout[0] (h)"), probability(value[1], "zoneout[1] (c)")
    if isinstance(value, (tuple, list)):
        raise TypeError(f"zoneout: expected a probability in [0, 1), got {value!r}")
    rate = probability(value, "zoneout")
    return rate, rate


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: the cell stack, the flat parameters,
    input checks, forward and backward through layers and directions."""

    is_recurrent = True
    accepts_lengths = True
    _forward_cache = ("_last",)
    family: Family   # the registry's entry (rnnpy.cells): gates, C type, gate roles

    @property
    def _has_cell_state(self) -> bool:   # LSTM: the state is (h, c)
        return self.family.has_cell_state

    # gate blocks (in PyTorch's order) that keep the old state and that let the new
    # input in: LSTM f and i; GRU z (its 1-z is the input gate); None for the RNN
    @property
    def _keep_gate(self) -> Optional[int]:
        return self.family.keep_gate

    @property
    def _input_gate(self) -> Optional[int]:
        return self.family.input_gate

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
        zoneout: Any = 0.0,
        recurrent_dropout: float = 0.0,
        init: str = "uniform",
        t_max: Optional[float] = None,
        forget_bias: Optional[float] = None,
        recurrent_init: str = "uniform",
        compute_dtype: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.init, self.t_max, self.forget_bias, self.recurrent_init = _init_options(
            type(self).__name__, self._keep_gate, init, t_max, forget_bias, recurrent_init)
        self.merge_mode = choice(merge_mode, "merge_mode", MERGE_MODES)
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
        self._zoneout = _zoneout_rates(zoneout, self._has_cell_state)
        self.zoneout: Union[float, Tuple[float, float]] = (
            self._zoneout if isinstance(zoneout, (tuple, list)) else self._zoneout[0])
        self.recurrent_dropout = probability(recurrent_dropout, "recurrent_dropout")
        self.dtype = as_dtype(dtype)
        if self.forget_bias is not None:   # a bias that overflows the dtype would be Inf
            with np.errstate(over="ignore"):
                fits = bool(np.isfinite(self.dtype.type(self.forget_bias)))
            if not fits:
                raise ValueError(f"forget_bias: expected a number finite in {self.dtype.name} "
                                 f"(|forget_bias| <= {np.finfo(self.dtype).max:.6g}), got "
                                 f"{self.forget_bias!r}")
        self.seed = seed_value(seed)
        self._compute_dtype = resolve_compute_dtype(compute_dtype, self.dtype)
        # "auto" is kept as asked (a saved model resolves it again where it is loaded)
        self._compute_request = "auto" if compute_dtype == "auto" else None
        self.num_directions = 2 if self.bidirectional else 1
        self._rng = np.random.default_rng(self.seed)
        # (input size, parameter count, [(name, offset, shape)]) of each cell, in storage order
        self._cell_specs = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.num_directions * self.state_size
            probe = self._make_cell(in_size)
            for _ in range(self.num_directions):
                self._cell_specs.append((in_size, probe.num_params, probe.layout()))
        self._cells: list = []
        self._last: Optional[dict] = None
        self._allocate()
        self.reset_parameters()

    @property
    def state_size(self) -> int:
        """Hs, the features of h and of each direction's output: proj_size when the
        LSTM projects, else hidden_size."""
        return getattr(self, "proj_size", 0) or self.hidden_size

    # -- construction ----------------------------------------------------
    def _make_cell(self, input_size: int, **buffers: Any) -> Any:
        """The C cell (rnnpy._core's type of this family) of one layer and direction."""
        cell_type = getattr(_core, self.family.c_type)
        cell = cell_type(input_size, self.hidden_size, dtype=self.dtype.name,
                         **self._cell_options(), **buffers)
        cell.compute_dtype = self._compute_dtype   # every cell made, whenever it is (re)made
        return cell

    def _cell_options(self) -> dict:
        """The family's keyword arguments of its C type (nonlinearity, peephole, ...)."""
        return {}

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

    @property
    def compute_dtype(self) -> str:
        """The precision of the matrix products, resolved: the layer's dtype name,
        or "bfloat16" (float32 layers on a CPU with AMX-BF16 or AVX512-BF16).
        Settable to None (the dtype), the dtype's name, "bfloat16" or "auto"
        ("bfloat16" where it runs, else the dtype; reading gives what it chose).

        With "bfloat16" parameters, gradients, inputs, outputs and states stay
        float32 arrays and every elementwise operation (gates, cell state, layer
        norm) float32; the operands of each product (x W_ih^T, h W_hh^T, the
        projection and the backward products) are rounded to bfloat16, nearest
        even, and accumulated in float32. Setting another precision drops the
        latest forward (backward then asks for a new one: it would differentiate
        a different function; masks_held() still reuses its masks). Saved with the model;
        ONNX export writes the float32 graph (see rnnpy.io.onnx).
        """
        return self._compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, value: Optional[str]) -> None:
        resolved = resolve_compute_dtype(value, self.dtype)   # checked before anything changes
        run_locked(self, self._set_compute_dtype, resolved, "auto" if value == "auto" else None)

    def _set_compute_dtype(self, resolved: str, request: Optional[str]) -> None:
        if resolved == self._compute_dtype:   # the same function: the forward stays valid
            self._compute_request = request
            return
        for cell in self._cells:
            cell.compute_dtype = resolved
        self._compute_dtype, self._compute_request = resolved, request
        if self._last is not None:   # no backward of the old forward; masks_held keeps the masks
            self._last = {"masks": self._last["masks"], "cell_masks": self._last["cell_masks"],
                          "compute_dtype_changed": True}

    def reset_parameters(self) -> None:
        """Draws every parameter from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch does;
        layer-norm gains start at 1 and the cell-state norm's bias at 0.

        Then, cell by cell in storage order (layer 0, its reverse direction,
        layer 1, ...), from the same seeded stream:

        recurrent_init="orthogonal": each gate's (H, Hs) block of weight_hh is
            replaced by Q of the QR decomposition of a standard normal matrix,
            signs fixed by diag(R) (as torch.nn.init.orthogonal_), so Q^T Q = I.
        init="chrono": u ~ U(1, t_max - 1) per unit (one draw of H numbers);
            the keep gate's bias is log(u) (LSTM: f; GRU: z) and the LSTM's input
            gate bias -log(u).
        forget_bias=b: the keep gate's bias is b (no draw).

        PyTorch has two bias vectors; the model only sees their sum. The set
        value goes into bias_ih and the same block of bias_hh is zeroed, so the
        sum is exactly the chrono (or forget-bias) value and a framework with a
        single bias (Keras, ONNX after merging) reads it unchanged. Both vectors
        receive the same gradient, so the split does not change training.
        """
        k = 1.0 / math.sqrt(self.hidden_size)
        self.flat_params[...] = self._rng.uniform(-k, k, self.flat_params.size)
        for name, view in self.params.items():
            if name.startswith(("ln_weight_", "ln_bias_")):
                view[...] = 1.0 if name.startswith("ln_weight_") else 0.0
        H = self.hidden_size
        for ci in range(len(self._cell_specs)):
            layer, d = divmod(ci, self.num_directions)
            suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
            if self.recurrent_init == "orthogonal":
                w = self.params["weight_hh" + suffix]
                for g in range(w.shape[0] // H):
                    w[g * H:(g + 1) * H] = _orthogonal(self._rng, H, w.shape[1])
            keep = None
            if self.init == "chrono":
                keep = np.log(self._rng.uniform(1.0, self.t_max - 1.0, H))
            elif self.forget_bias is not None:
                keep = np.full(H, self.forget_bias)
            if keep is not None:
                b_ih, b_hh = self.params["bias_ih" + suffix], self.params["bias_hh" + suffix]
                gates = [(self._keep_gate, keep)]
                if self.init == "chrono" and self._input_gate is not None:
                    gates.append((self._input_gate, -keep))
                for g, value in gates:
                    b_ih[g * H:(g + 1) * H] = value
                    b_hh[g * H:(g + 1) * H] = 0.0

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional,
                "dropout": self.dropout, "dtype": self.dtype.name, "seed": self.seed,
                "time_major": self.time_major, "merge_mode": self.merge_mode,
                "zoneout": list(self.zoneout) if isinstance(self.zoneout, tuple) else self.zoneout,
                "recurrent_dropout": self.recurrent_dropout, "init": self.init,
                "t_max": self.t_max, "forget_bias": self.forget_bias,
                "recurrent_init": self.recurrent_init,
                "compute_dtype": self._compute_request or self._compute_dtype,
                **self._extra_config()}

    def _extra_config(self) -> dict:
        return {}

    # -- checks ---------------------------------------------------------------
    def _layout(self) -> str:
        return "(T, B, I)" if self.time_major else "(B, T, I)"

    def _state_array(self, obj: Any, name: str, B: int, cell: bool = False) -> Optional[np.ndarray]:
        if obj is None:
            return None
        arr = as_float_array(obj, name, self.dtype)
        LD = self.num_layers * self.num_directions
        if cell or self.state_size == self.hidden_size:
            check_shape(arr, name, (LD, B, self.hidden_size), "(num_layers*D, B, H)")
        else:
            check_shape(arr, name, (LD, B, self.state_size), "(num_layers*D, B, P)")
        check_finite(arr, name)
        return arr

    def _split_state(self, state: Any, name: str, B: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        if state is None:
            return None, None
        if self._has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name}: expected a tuple (h, c) or None, got {type(state).__name__}")
            return (self._state_array(state[0], f"{name}[0] (h)", B),
                    self._state_array(state[1], f"{name}[1] (c)", B, cell=True))
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
        if lengths is not None:   # the kernels check dtype, shape and range
            lengths = array(lengths, "lengths")
        D, H, L, Hs = self.num_directions, self.hidden_size, self.num_layers, self.state_size
        T = x.shape[0] if self.time_major else x.shape[1]
        batch_first = not self.time_major
        h_n = np.empty((L * D, B, Hs), dtype=self.dtype)
        c_n = np.empty((L * D, B, H), dtype=self.dtype) if self._has_cell_state else None
        masks = []
        cell_masks = []
        merged: Optional[list] = None
        inp = x
        keep = grad_enabled()   # under rnnpy.no_grad(), nothing is kept for backward
        for layer in range(L):
            outs = []
            for d in range(D):
                i = layer * D + d
                cell = self._cells[i]
                h = None if h0 is None else h0[i]
                cm = self._cell_masks(i, B, T)
                cell_masks.append(cm)
                if self._has_cell_state:
                    c = None if c0 is None else c0[i]
                    out, h_n[i], c_n[i] = cell.forward(inp, h, c, lengths, reverse=d == 1,
                                                       batch_first=batch_first, keep_cache=keep,
                                                       **cm)
                else:
                    out, h_n[i] = cell.forward(inp, h, lengths, reverse=d == 1,
                                               batch_first=batch_first, keep_cache=keep, **cm)
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
        self._last = {"B": B, "T": T, "masks": masks, "merged": merged,
                      "cell_masks": cell_masks} if keep else None
        state_out: State = (h_n, c_n) if self._has_cell_state else h_n
        return inp, state_out

    def _cell_masks(self, i: int, B: int, T: int) -> dict:
        """The zoneout and recurrent-dropout arguments of cell i for one forward:
        fresh random masks in training (the previous call's within
        masks_held()), the zoneout expectation in evaluation."""
        zh, zc = self._zoneout
        zc = zc if self._has_cell_state else 0.0
        rd = self.recurrent_dropout
        if not (zh or zc or rd):
            return {}
        Hs, H, dt = self.state_size, self.hidden_size, self.dtype
        if not self.training:
            out = {}
            if zh:
                out["zoneout_h"] = np.full(Hs, zh, dtype=dt)
            if zc:
                out["zoneout_c"] = np.full(H, zc, dtype=dt)
            return out
        lead = (T, B) if self.time_major else (B, T)
        if self._masks_held and self._last and self._last.get("cell_masks"):
            prev = self._last["cell_masks"][i]
            shapes = {"zoneout_h": lead + (Hs,), "zoneout_c": lead + (H,), "rec_mask": (B, Hs)}
            if prev and all(v.shape == shapes[k] for k, v in prev.items()):
                return prev
        out = {}
        if zh:
            out["zoneout_h"] = (self._rng.random(lead + (Hs,)) < zh).astype(dt)
        if zc:
            out["zoneout_c"] = (self._rng.random(lead + (H,)) < zc).astype(dt)
        if rd:
            keep = 1.0 - rd
            out["rec_mask"] = ((self._rng.random((B, Hs)) < keep) / keep).astype(dt)
        return out

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
        H = self.state_size
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
        prev = self._last["masks"][layer] if (self._last and self._masks_held) else None
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
            raise RuntimeError("backward: nothing to differentiate; call forward first "
                               "(outside rnnpy.no_grad(), which keeps nothing for backward)")
        if self._last.get("compute_dtype_changed"):
            raise RuntimeError("backward: compute_dtype changed since the last forward, whose "
                               "gradients would be of another function; call forward again")
        B, T = self._last["B"], self._last["T"]
        D, L, Hc, H = self.num_directions, self.num_layers, self.hidden_size, self.state_size
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
        dc0 = np.empty((L * D, B, Hc), dtype=self.dtype) if self._has_cell_state else None
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
        if self.zoneout:
            extra += f", zoneout={self.zoneout}"
        if self.recurrent_dropout:
            extra += f", recurrent_dropout={self.recurrent_dropout}"
        compute = (f", compute_dtype='{self._compute_dtype}'"
                   if self._compute_dtype != self.dtype.name else "")
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}{extra}, dtype='{self.dtype.name}'{compute})")

    def _extra_repr(self) -> str:
        return ""
