"""Pure-NumPy reference of every rnnpy cell, forward and backward.

Readable and slow on purpose: one Python loop over time, one line per
equation, backpropagation through time written out by hand. The test suite
checks the C kernels against these functions, and these functions against
PyTorch, so that a disagreement can be pinned on one side.

Dimension key: T time steps, B batch, I input features, H hidden units,
G gates (RNN 1, LSTM 4, GRU 3). Every cell function is time-major: x is
(T, B, I). Weights use PyTorch's names, shapes and gate order:
    w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)
    LSTM gates i, f, g, o;  GRU gates r, z, n;  w_peep (3, H) rows i, f, o.

Computation happens in the dtype of x (float32 or float64).

Variable lengths: sequence b runs only the steps t < lengths[b]. Its outputs
at later steps are zero, its state keeps the value after its last valid step
(h0 when the length is 0), and the skipped steps get no gradient. With
reverse=True sequence b runs from t = lengths[b] - 1 down to 0. Both follow
from one rule used below: every step t is visited (0..T-1, or T-1..0 when
reversed), and a row whose mask m[t, b] = (t < lengths[b]) is 0 keeps its
state unchanged.

Each `*_forward` takes `return_cache=True` to also return what the matching
`*_backward` needs; backward returns (dx, dh0[, dc0], grads) where grads is a
dict with keys "weight_ih", "weight_hh", "bias_ih", "bias_hh" (and
"weight_peep" for the peephole LSTM).

The extended cells of csrc/cells_ext.h (layer norm, zoneout, recurrent
dropout, projection, with or without peepholes) are `ext_cell_forward` /
`ext_cell_backward` for one direction and `ext_stack_forward` /
`ext_stack_backward` for a whole layer under rnnpy's parameter names; their
equations are written out above them, below the plain cells.
"""

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_cell_forward", "rnn_cell_backward",
    "lstm_cell_forward", "lstm_cell_backward",
    "gru_cell_forward", "gru_cell_backward",
    "stack_forward", "stack_backward",
    "MODES",
]

# mode -> gates per cell
MODES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "LSTM_PEEPHOLE": 4, "GRU": 3}


# ---------------------------------------------------------------------------
# helpers


def _step_out(m_t, new, h):
    """(h_t, out_t) from a step's new state: where a sequence still runs
    (m_t = 1) the new state, past its end the old one kept and a zero output."""
    return m_t * new + (1 - m_t) * h, m_t * new


def _with_cache(results, return_cache, **cache):
    """A forward's results, followed by its cache (a dict) when asked for."""
    return (*results, cache) if return_cache else results


def sigmoid(a):
    """Logistic function without overflow for large |a| (same dtype as a)."""
    e = np.exp(-np.abs(a))
    one = np.ones((), dtype=a.dtype)
    return np.where(a >= 0, one / (one + e), e / (one + e))


def _mask(lengths, T, B, dtype):
    """(T, B, 1) array: 1 where step t belongs to sequence b, else 0."""
    if lengths is None:
        return np.ones((T, B, 1), dtype=dtype)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},), got {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer):
        if not np.all(lengths == np.round(lengths)):
            raise ValueError("lengths: expected integers")
        lengths = lengths.astype(np.int64)
    if np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"lengths: expected values in [0, {T}], got {lengths}")
    t = np.arange(T)[:, None]
    return (t < lengths[None, :]).astype(dtype)[:, :, None]


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _cast(dtype, *arrays):
    return [None if a is None else np.asarray(a, dtype=dtype) for a in arrays]


# ---------------------------------------------------------------------------
# Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

def rnn_cell_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh",
                     lengths=None, reverse=False, return_cache=False):
    """Elman RNN over a batch. x (T, B, I), h0 (B, H) -> out (T, B, H), hT (B, H)."""
    x = np.asarray(x)
    dt = x.dtype
    h0, w_ih, w_hh, b_ih, b_hh = _cast(dt, h0, w_ih, w_hh, b_ih, b_hh)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    T, B, _ = x.shape
    H = w_hh.shape[1]
    m = _mask(lengths, T, B, dt)
    out = np.zeros((T, B, H), dtype=dt)
    hs = np.zeros((T, B, H), dtype=dt)       # post-activation candidate per step
    hprev = np.zeros((T, B, H), dtype=dt)    # state entering step t
    h = h0.copy()
    for t in _steps(T, reverse):
        hprev[t] = h
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        hn = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        hs[t] = hn
        h, out[t] = _step_out(m[t], hn, h)
    return _with_cache((out, h), return_cache, x=x, w_ih=w_ih, w_hh=w_hh, m=m, hs=hs,
                       hprev=hprev, nonlinearity=nonlinearity, reverse=reverse)


def _back_start(dout, dhT, cache):
    """Common start of a backward: gradient buffers from a forward's cache.

    Returns x (T, B, I), m (T, B, 1), dout (T, B, H), dh (B, H) (a copy), dx (T, B, I) zeros
    and the grads dict of zeros (weights like the cache's, biases (G*H,)).
    """
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dout = np.zeros((T, B, H), dt) if dout is None else np.asarray(dout, dt)
    dh = np.zeros((B, H), dt) if dhT is None else np.asarray(dhT, dt).copy()
    g = {"weight_ih": np.zeros_like(w_ih), "weight_hh": np.zeros_like(w_hh),
         "bias_ih": np.zeros(w_ih.shape[0], dt), "bias_hh": np.zeros(w_hh.shape[0], dt)}
    return x, cache["m"], dout, dh, np.zeros_like(x), g


def rnn_cell_backward(dout, dhT, cache):
    """Gradients of an Elman RNN. dout (T, B, H) or None, dhT (B, H) or None.

    Returns dx (T, B, I), dh0 (B, H), grads dict.
    """
    x, m, dout, dh, dx, g = _back_start(dout, dhT, cache)
    w_ih, w_hh, hs, hprev = cache["w_ih"], cache["w_hh"], cache["hs"], cache["hprev"]
    T = x.shape[0]
    for t in _steps(T, not cache["reverse"]):
        dht = dh + dout[t]                   # both only matter where m = 1
        if cache["nonlinearity"] == "tanh":
            da = dht * (1 - hs[t] ** 2)
        else:
            da = dht * (hs[t] > 0)
        da = m[t] * da
        dx[t] = da @ w_ih
        g["weight_ih"] += da.T @ x[t]
        g["weight_hh"] += da.T @ hprev[t]
        g["bias_ih"] += da.sum(0)
        g["bias_hh"] += da.sum(0)
        dh = m[t] * (da @ w_hh) + (1 - m[t]) * dh
    return dx, dh, g


# ---------------------------------------------------------------------------
# LSTM, optionally with peepholes (Gers & Schmidhuber):
#   i = sig(a_i + p_i*c_{t-1}), f = sig(a_f + p_f*c_{t-1}), g = tanh(a_g)
#   c_t = f*c_{t-1} + i*g,      o = sig(a_o + p_o*c_t),    h_t = o*tanh(c_t)
# with a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh split as i, f, g, o
# (p = 0 without peepholes).

def lstm_cell_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, w_peep=None,
                      lengths=None, reverse=False, return_cache=False):
    """LSTM over a batch. x (T, B, I), h0, c0 (B, H) -> out (T, B, H), hT, cT (B, H)."""
    x = np.asarray(x)
    dt = x.dtype
    h0, c0, w_ih, w_hh, b_ih, b_hh, w_peep = _cast(dt, h0, c0, w_ih, w_hh, b_ih, b_hh, w_peep)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    peep = w_peep if w_peep is not None else np.zeros((3, H), dt)
    m = _mask(lengths, T, B, dt)
    out = np.zeros((T, B, H), dt)
    gates = np.zeros((T, 4, B, H), dt)      # post-activation i, f, g, o
    cs = np.zeros((T, B, H), dt)            # candidate c_t
    hprev = np.zeros((T, B, H), dt)
    cprev = np.zeros((T, B, H), dt)
    h, c = h0.copy(), c0.copy()
    for t in _steps(T, reverse):
        hprev[t], cprev[t] = h, c
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i = sigmoid(a_i + peep[0] * c)
        f = sigmoid(a_f + peep[1] * c)
        gg = np.tanh(a_g)
        cn = f * c + i * gg
        o = sigmoid(a_o + peep[2] * cn)
        hn = o * np.tanh(cn)
        gates[t] = (i, f, gg, o)
        cs[t] = cn
        h = m[t] * hn + (1 - m[t]) * h
        c = m[t] * cn + (1 - m[t]) * c
        out[t] = m[t] * hn
    return _with_cache((out, h, c), return_cache, x=x, w_ih=w_ih, w_hh=w_hh, peep=peep,
                       has_peep=w_peep is not None, m=m, gates=gates, cs=cs, hprev=hprev,
                       cprev=cprev, reverse=reverse)


def lstm_cell_backward(dout, dhT, dcT, cache):
    """Gradients of an LSTM. dout (T, B, H), dhT, dcT (B, H), any may be None.

    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H), grads dict
    (with "weight_peep" (3, H) when the forward had peepholes).
    """
    x, w_ih, w_hh, peep, m = cache["x"], cache["w_ih"], cache["w_hh"], cache["peep"], cache["m"]
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dout = np.zeros((T, B, H), dt) if dout is None else np.asarray(dout, dt)
    dh = np.zeros((B, H), dt) if dhT is None else np.asarray(dhT, dt).copy()
    dc = np.zeros((B, H), dt) if dcT is None else np.asarray(dcT, dt).copy()
    dx = np.zeros_like(x)
    g = {"weight_ih": np.zeros_like(w_ih), "weight_hh": np.zeros_like(w_hh),
         "bias_ih": np.zeros(4 * H, dt), "bias_hh": np.zeros(4 * H, dt)}
    dpeep = np.zeros((3, H), dt)
    for t in _steps(T, not cache["reverse"]):
        i, f, gg, o = cache["gates"][t]
        cn, cp, hp = cache["cs"][t], cache["cprev"][t], cache["hprev"][t]
        mt = m[t]
        dht = dh + dout[t]
        tc = np.tanh(cn)
        da_o = mt * dht * tc * o * (1 - o)
        dct = mt * (dc + dht * o * (1 - tc ** 2) + da_o * peep[2])
        da_i = dct * gg * i * (1 - i)
        da_f = dct * cp * f * (1 - f)
        da_g = dct * i * (1 - gg ** 2)
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        dx[t] = da @ w_ih
        g["weight_ih"] += da.T @ x[t]
        g["weight_hh"] += da.T @ hp
        g["bias_ih"] += da.sum(0)
        g["bias_hh"] += da.sum(0)
        dpeep[0] += (da_i * cp).sum(0)
        dpeep[1] += (da_f * cp).sum(0)
        dpeep[2] += (da_o * cn).sum(0)
        dh = mt * (da @ w_hh) + (1 - mt) * dh
        dc = dct * f + da_i * peep[0] + da_f * peep[1] + (1 - mt) * dc
    if cache["has_peep"]:
        g["weight_peep"] = dpeep
    return dx, dh, dc, g


# ---------------------------------------------------------------------------
# GRU (PyTorch's form):
#   r = sig(W_ir x + b_ir + W_hr h + b_hr),  z = sig(W_iz x + b_iz + W_hz h + b_hz)
#   n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h_t = (1-z)*n + z*h_{t-1}

def gru_cell_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False,
                     return_cache=False):
    """GRU over a batch. x (T, B, I), h0 (B, H) -> out (T, B, H), hT (B, H)."""
    x = np.asarray(x)
    dt = x.dtype
    h0, w_ih, w_hh, b_ih, b_hh = _cast(dt, h0, w_ih, w_hh, b_ih, b_hh)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    m = _mask(lengths, T, B, dt)
    out = np.zeros((T, B, H), dt)
    gates = np.zeros((T, 3, B, H), dt)     # post-activation r, z, n
    hn_lin = np.zeros((T, B, H), dt)       # W_hn h + b_hn
    hprev = np.zeros((T, B, H), dt)
    h = h0.copy()
    for t in _steps(T, reverse):
        hprev[t] = h
        gi_r, gi_z, gi_n = np.split(x[t] @ w_ih.T + b_ih, 3, axis=1)
        gh_r, gh_z, gh_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r = sigmoid(gi_r + gh_r)
        z = sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        hnew = (1 - z) * n + z * h
        gates[t] = (r, z, n)
        hn_lin[t] = gh_n
        h, out[t] = _step_out(m[t], hnew, h)
    return _with_cache((out, h), return_cache, x=x, w_ih=w_ih, w_hh=w_hh, m=m, gates=gates,
                       hn_lin=hn_lin, hprev=hprev, reverse=reverse)


def gru_cell_backward(dout, dhT, cache):
    """Gradients of a GRU. dout (T, B, H) or None, dhT (B, H) or None.

    Returns dx (T, B, I), dh0 (B, H), grads dict.
    """
    x, m, dout, dh, dx, g = _back_start(dout, dhT, cache)
    w_ih, w_hh, T = cache["w_ih"], cache["w_hh"], x.shape[0]
    for t in _steps(T, not cache["reverse"]):
        r, z, n = cache["gates"][t]
        hp, gh_n = cache["hprev"][t], cache["hn_lin"][t]
        mt = m[t]
        dht = mt * (dh + dout[t])
        da_n = dht * (1 - z) * (1 - n ** 2)
        da_z = dht * (hp - n) * z * (1 - z)
        da_r = da_n * gh_n * r * (1 - r)
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
        dx[t] = dgi @ w_ih
        g["weight_ih"] += dgi.T @ x[t]
        g["weight_hh"] += dgh.T @ hp
        g["bias_ih"] += dgi.sum(0)
        g["bias_hh"] += dgh.sum(0)
        dh = dht * z + dgh @ w_hh + (1 - mt) * dh
    return dx, dh, g


# ---------------------------------------------------------------------------
# whole stacks with PyTorch parameter names

def _names(layer, direction):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    return {k: k + sfx for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peep")}


def _run_cell(mode, p, x, h0, c0, lengths, reverse):
    if mode in ("RNN_TANH", "RNN_RELU"):
        nl = "tanh" if mode == "RNN_TANH" else "relu"
        out, h, cache = rnn_cell_forward(x, h0, *p[:4], nonlinearity=nl, lengths=lengths,
                                         reverse=reverse, return_cache=True)
        return out, h, None, cache
    if mode in ("LSTM", "LSTM_PEEPHOLE"):
        return lstm_cell_forward(x, h0, c0, *p[:4], w_peep=p[4], lengths=lengths,
                                 reverse=reverse, return_cache=True)
    out, h, cache = gru_cell_forward(x, h0, *p[:4], lengths=lengths, reverse=reverse,
                                     return_cache=True)
    return out, h, None, cache


def _back_cell(mode, cache, dout, dh, dc):
    if mode in ("RNN_TANH", "RNN_RELU"):
        dx, dh0, g = rnn_cell_backward(dout, dh, cache)
        return dx, dh0, None, g
    if mode in ("LSTM", "LSTM_PEEPHOLE"):
        return lstm_cell_backward(dout, dh, dc, cache)
    dx, dh0, g = gru_cell_backward(dout, dh, cache)
    return dx, dh0, None, g


def stack_forward(mode, params, x, state=None, lengths=None, *, num_layers,
                  bidirectional, batch_first=True, return_cache=False):
    """A multi-layer, optionally bidirectional stack, as PyTorch's nn.RNN/LSTM/GRU.

    mode: "RNN_TANH", "RNN_RELU", "LSTM", "LSTM_PEEPHOLE" or "GRU".
    params: dict with PyTorch names (weight_ih_l0, ..., *_reverse, weight_peep_l{k}).
    x: (B, T, I) if batch_first else (T, B, I); computation uses x's dtype.
    state: h (L*D, B, H), for LSTM modes a tuple (h, c); None means zeros.
    Returns out (B, T, D*H) (or (T, B, D*H)) and the final state in the same
    form as `state`; with return_cache=True also a cache for stack_backward.
    No dropout.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {sorted(MODES)}, got {mode!r}")
    x = np.asarray(x)
    dt = x.dtype
    xt = np.swapaxes(x, 0, 1) if batch_first else x
    T, B, _ = xt.shape
    D = 2 if bidirectional else 1
    H = np.asarray(params["weight_hh_l0"]).shape[1]
    is_lstm = mode in ("LSTM", "LSTM_PEEPHOLE")
    if state is None:
        h0 = np.zeros((num_layers * D, B, H), dt)
        c0 = np.zeros((num_layers * D, B, H), dt)
    elif is_lstm:
        h0 = np.asarray(state[0], dt)
        c0 = np.asarray(state[1], dt)
    else:
        h0 = np.asarray(state, dt)
        c0 = None
    hn = np.zeros((num_layers * D, B, H), dt)
    cn = np.zeros((num_layers * D, B, H), dt)
    caches = []
    inp = xt
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            nm = _names(layer, d)
            p = [params[nm[k]] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            p.append(params[nm["weight_peep"]] if mode == "LSTM_PEEPHOLE" else None)
            k = layer * D + d
            out, h, c, cache = _run_cell(mode, p, inp, h0[k],
                                         c0[k] if is_lstm else None, lengths, bool(d))
            outs.append(out)
            hn[k] = h
            if is_lstm:
                cn[k] = c
            caches.append(cache)
        inp = np.concatenate(outs, axis=2)
    out = np.swapaxes(inp, 0, 1) if batch_first else inp
    st = (hn, cn) if is_lstm else hn
    return _with_cache((out, st), return_cache, mode=mode, caches=caches,
                       num_layers=num_layers, D=D, H=H, batch_first=batch_first, dtype=dt,
                       T=T, B=B)


def stack_backward(cache, dout, dstate=None):
    """Gradients of a stack run by stack_forward(..., return_cache=True).

    dout: like out, or None for zeros. dstate: like the state (LSTM modes: a
    tuple (dh, dc), either may be None), or None.
    Returns dx like x, dstate like the state, and a dict of parameter
    gradients under the PyTorch names.
    """
    mode, L, D, H = cache["mode"], cache["num_layers"], cache["D"], cache["H"]
    dt, T, B = cache["dtype"], cache["T"], cache["B"]
    is_lstm = mode in ("LSTM", "LSTM_PEEPHOLE")
    if dout is None:
        dcur = np.zeros((T, B, D * H), dt)
    else:
        dout = np.asarray(dout, dt)
        dcur = np.swapaxes(dout, 0, 1) if cache["batch_first"] else dout
    dh = dc = None
    if dstate is not None:
        if is_lstm:
            dh, dc = dstate
        else:
            dh = dstate
    dh = np.zeros((L * D, B, H), dt) if dh is None else np.asarray(dh, dt)
    dc = np.zeros((L * D, B, H), dt) if dc is None else np.asarray(dc, dt)
    dh0 = np.zeros((L * D, B, H), dt)
    dc0 = np.zeros((L * D, B, H), dt)
    grads = {}
    for layer in range(L - 1, -1, -1):
        dinp = None
        for d in range(D):
            k = layer * D + d
            dx, dhk, dck, g = _back_cell(mode, cache["caches"][k],
                                         dcur[:, :, d * H:(d + 1) * H], dh[k],
                                         dc[k] if is_lstm else None)
            dh0[k] = dhk
            if is_lstm:
                dc0[k] = dck
            nm = _names(layer, d)
            for key, val in g.items():
                grads[nm[key]] = val
            dinp = dx if dinp is None else dinp + dx
        dcur = dinp
    dx = np.swapaxes(dcur, 0, 1) if cache["batch_first"] else dcur
    return dx, ((dh0, dc0) if is_lstm else dh0), grads
