"""Recurrent layers: RNN, LSTM (with optional peepholes) and GRU.

A layer stacks ``num_layers`` cells of ``rnnpy._core`` (two per layer when
bidirectional) and keeps every parameter in one flat vector, so that
optimizers and gradient checks walk one array; ``params`` and ``grads`` map
PyTorch's names to views of it. Each layer has an explicit ``forward`` and
``backward``: backward differentiates the most recent forward and ADDS the
parameter gradients into ``grads`` (``zero_grad`` is the caller's job, which
makes gradient accumulation and truncated BPTT free).

Shapes (D = 2 if bidirectional else 1; Hs = proj_size for a projected LSTM,
else H):
    x      (B, T, I), or (T, B, I) with time_major=True
    out    (B, T, D*Hs), or (T, B, D*Hs)
    state  h (num_layers*D, B, Hs); for the LSTM a tuple (h, c), c (num_layers*D, B, H)

Options beyond PyTorch's, all computed in the C kernels (rnnpy/_core):
    layer_norm          LSTM, GRU: layer normalisation of the input and recurrent
                        pre-activations (and of the LSTM's cell state before tanh)
    zoneout             in training each unit of h (and c) keeps its previous value
                        with this probability; in evaluation the expectation
    recurrent_dropout   in training one dropout mask per sequence on h_{t-1} where it
                        enters W_hh (Gal & Ghahramani); nothing in evaluation
    proj_size           LSTM: h = W_hr (o * tanh(c)), as PyTorch's nn.LSTM
    compute_dtype       "bfloat16": the matrix products on bfloat16 operands with float32
                        accumulation (AMX or AVX512-BF16), everything else float32;
                        "auto": that where the CPU has it, else the dtype (see
                        _RNNBase.compute_dtype and rnnpy.nn.precision)

Initialisations for long time lags (see ``_RNNBase.reset_parameters``):
    init="chrono", t_max  LSTM, GRU: gate biases that spread the units' memory over
                        2..t_max steps (Tallec & Ollivier 2018)
    forget_bias         LSTM, GRU: a constant bias on the gate that keeps the old
                        state (Keras's unit_forget_bias; Jozefowicz et al. 2015)
    recurrent_init="orthogonal"  each gate's block of W_hh orthogonal (Saxe et al. 2014)
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np

from .._validate import choice, positive_int
from ..cells import kind as cell_kind
from ..cells import GRU_FAMILY, LSTM_FAMILY, RNN_FAMILY
from .stack import _RNNBase


class RNN(_RNNBase):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu.

    Parameters per layer k (and ``_reverse`` when bidirectional), as PyTorch's
    nn.RNN: weight_ih_l{k} (H, I or D*H), weight_hh_l{k} (H, H),
    bias_ih_l{k} (H,), bias_hh_l{k} (H,).

    ``recurrent_init="orthogonal"`` draws weight_hh orthogonal (see LSTM); the
    gate-bias options (init="chrono", forget_bias) need gates and are refused here.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bidirectional: bool = False, dropout: float = 0.0,
                 dtype: Any = "float32", seed: Optional[int] = None, time_major: bool = False,
                 threads: Optional[int] = None, merge_mode: Optional[str] = "concat",
                 zoneout: float = 0.0, recurrent_dropout: float = 0.0,
                 init: str = "uniform", t_max: Optional[float] = None,
                 forget_bias: Optional[float] = None, recurrent_init: str = "uniform",
                 compute_dtype: Optional[str] = None) -> None:
        self.nonlinearity = choice(nonlinearity, "nonlinearity", ("tanh", "relu"))
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                         time_major, threads, merge_mode, zoneout, recurrent_dropout, init=init, t_max=t_max,
                         forget_bias=forget_bias, recurrent_init=recurrent_init,
                         compute_dtype=compute_dtype)

    family = RNN_FAMILY

    def _cell_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

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

    With ``proj_size=P`` (0 < P < H; PyTorch's LSTM with projections) the hidden
    state is projected, h_t = W_hr (o*tanh(c_t)) with weight_hr_l{k} (P, H), so
    h, the output and W_hh have P features while c keeps H.

    With ``layer_norm=True`` (Ba, Kiros & Hinton) the two pre-activations are
    normalised over their 4H values before the biases are added, and c_t before
    its tanh: a = g_ih*LN(W_ih x_t) + b_ih + g_hh*LN(W_hh h_{t-1}) + b_hh,
    h_t = o*tanh(g_c*LN(c_t) + b_c), with gains ln_weight_ih_l{k} (4H,),
    ln_weight_hh_l{k} (4H,), ln_weight_c_l{k} (H,) and bias ln_bias_c_l{k} (H,);
    c_t itself is carried unnormalised.

    ``zoneout`` is a probability for both h and c, or a pair (rate on h, rate on c).

    Parameters per layer: weight_ih_l{k} (4H, I or D*Hs), weight_hh_l{k} (4H, Hs),
    bias_ih_l{k} (4H,), bias_hh_l{k} (4H,). The state is a tuple (h, c).

    Initialisations (all seeded, all directions and layers; details in
    reset_parameters), for tasks whose answer depends on inputs far back:

    - ``init="chrono", t_max=T`` (Tallec & Ollivier 2018): b_f = log(U(1, T - 1)),
      b_i = -b_f per unit, so the units' memory time constants spread over 2..T
      steps. Use it when the lags are long and roughly known (T = the longest lag or
      the sequence length): it makes the temporal-order task's hard and nightmare
      levels learnable in a few thousand sequences.
    - ``forget_bias=1.0`` (Keras's unit_forget_bias; Jozefowicz et al. 2015): the
      forget gate starts mostly open. A safe default when lags are unknown or short.
    - ``recurrent_init="orthogonal"`` (Saxe et al. 2014): each gate's block of
      weight_hh orthogonal, so the recurrent map neither shrinks nor grows a
      state at the start. Combines with either of the above; it matters most for
      the plain RNN, whose only memory is W_hh.
    """

    family = LSTM_FAMILY

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, peephole: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None, time_major: bool = False,
                 threads: Optional[int] = None, merge_mode: Optional[str] = "concat",
                 proj_size: int = 0, layer_norm: bool = False,
                 zoneout: Union[float, Tuple[float, float]] = 0.0,
                 recurrent_dropout: float = 0.0,
                 init: str = "uniform", t_max: Optional[float] = None,
                 forget_bias: Optional[float] = None, recurrent_init: str = "uniform",
                 compute_dtype: Optional[str] = None) -> None:
        if not isinstance(peephole, (bool, np.bool_)):
            raise TypeError(f"peephole: expected a bool, got {peephole!r}")
        if not isinstance(layer_norm, (bool, np.bool_)):
            raise TypeError(f"layer_norm: expected a bool, got {layer_norm!r}")
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size, (int, np.integer)):
            raise TypeError(f"proj_size: expected an int in [0, hidden_size), got {proj_size!r}")
        hs = positive_int(hidden_size, "hidden_size")
        if not 0 <= int(proj_size) < hs:
            raise ValueError(f"proj_size: expected an int in [0, hidden_size) = [0, {hs}), "
                             f"got {proj_size!r}")
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.proj_size = int(proj_size)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                         time_major, threads, merge_mode, zoneout, recurrent_dropout, init=init, t_max=t_max,
                         forget_bias=forget_bias, recurrent_init=recurrent_init,
                         compute_dtype=compute_dtype)

    def _cell_options(self) -> dict:
        return {"peephole": self.peephole, "proj_size": self.proj_size,
                "layer_norm": self.layer_norm}

    def _extra_repr(self) -> str:
        return ((", peephole=True" if self.peephole else "")
                + (f", proj_size={self.proj_size}" if self.proj_size else "")
                + (", layer_norm=True" if self.layer_norm else ""))

    def _extra_config(self) -> dict:
        return {"peephole": self.peephole, "proj_size": self.proj_size,
                "layer_norm": self.layer_norm}


class GRU(_RNNBase):
    """GRU, gates r, z, n as in PyTorch's nn.GRU:

        r = sig(W_ir x + b_ir + W_hr h + b_hr)   z = sig(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
        h_t = (1-z)*n + z*h_{t-1}

    With ``layer_norm=True`` the input and recurrent products are normalised over
    their 3H values, with gains ln_weight_ih_l{k} (3H,) and ln_weight_hh_l{k} (3H,),
    before the biases: u = g_ih*LN(W_ih x) + b_ih, v = g_hh*LN(W_hh h) + b_hh, and
    r, z, n as above from u and v (n = tanh(u_n + r*v_n)).

    Parameters per layer: weight_ih_l{k} (3H, I or D*H), weight_hh_l{k} (3H, H),
    bias_ih_l{k} (3H,), bias_hh_l{k} (3H,).

    Initialisation for long time lags: ``init="chrono", t_max=T`` draws the update
    gate's bias b_z = log(u), u ~ U(1, T - 1), per unit. Derivation (Tallec &
    Ollivier 2018, who start from the same leaky unit): when z barely depends on
    the input, z ~ sig(b_z) is constant and h_t = (1-z) n_t + z h_{t-1} is an
    exponential average that forgets with time constant tau = 1/(1-z): z plays the
    LSTM's forget gate and 1-z = sig(-b_z) its input gate, already tied as chrono
    ties b_i = -b_f. Asking tau ~ U(2, T) gives sig(b_z) = 1 - 1/tau, that is
    b_z = log(tau - 1) = log(U(1, T - 1)). No other bias changes. ``forget_bias=b``
    sets b_z = b (the GRU analogue of Keras's unit_forget_bias).
    """

    family = GRU_FAMILY   # keep gate z (1-z lets n in: no separate input-gate bias)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, dtype: Any = "float32",
                 seed: Optional[int] = None, time_major: bool = False,
                 threads: Optional[int] = None, merge_mode: Optional[str] = "concat",
                 layer_norm: bool = False, zoneout: float = 0.0,
                 recurrent_dropout: float = 0.0,
                 init: str = "uniform", t_max: Optional[float] = None,
                 forget_bias: Optional[float] = None, recurrent_init: str = "uniform",
                 compute_dtype: Optional[str] = None) -> None:
        if not isinstance(layer_norm, (bool, np.bool_)):
            raise TypeError(f"layer_norm: expected a bool, got {layer_norm!r}")
        self.layer_norm = bool(layer_norm)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, seed,
                         time_major, threads, merge_mode, zoneout, recurrent_dropout, init=init, t_max=t_max,
                         forget_bias=forget_bias, recurrent_init=recurrent_init,
                         compute_dtype=compute_dtype)

    def _cell_options(self) -> dict:
        return {"layer_norm": self.layer_norm}

    def _extra_repr(self) -> str:
        return ", layer_norm=True" if self.layer_norm else ""

    def _extra_config(self) -> dict:
        return {"layer_norm": self.layer_norm}


LAYERS = {cls.family.layer: cls for cls in (RNN, LSTM, GRU)}


def recurrent_layer(kind: Any, input_size: int, hidden_size: int, **kwargs: Any) -> _RNNBase:
    """The layer of a cell kind (a rnnpy.cells.Kind or any of its spellings:
    "lstm_peephole", "peephole", ...) with the kind's options; kwargs go to
    the layer's constructor (and override the kind's options)."""
    k = cell_kind(kind)
    return LAYERS[k.layer](input_size, hidden_size, **{**dict(k.options), **kwargs})
