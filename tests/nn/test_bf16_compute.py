"""compute_dtype="bfloat16": the accuracy of the recurrent layers whose matrix
products take bfloat16 operands (float32 accumulation), stated and tested.

- One step (T = 1) of every cell against float64, each output within a bound
  derived from bfloat16's unit roundoff u = 2^-8 and the reduction lengths
  (K = I for the input product, K = Hs for the recurrent one); the
  derivation is in test_one_step_within_bound's docstring.
- Whole sequences and every gradient against float64 (torch autograd), no
  worse than 1.5x PyTorch's own bfloat16 (module, weights and inputs in
  torch.bfloat16) on the same weights, over all cells and the options, both
  layouts, lengths, two bidirectional layers.
- The gradients are those of the bfloat16 forward: against float32's, within
  a tolerance that is a multiple of u (finite differences do not apply, see
  test_gradients_follow_the_bf16_forward).
- Bits identical for threads 1 and 2.
Everything here needs AMX-BF16 or AVX512-BF16 and skips elsewhere, saying so.
The largest errors (rnnpy and torch bf16) are printed at the end (run with -s).
"""
import math

import numpy as np
import pytest
from helpers import ErrorTable, import_torch, rel_err
from torch_ext import torch_ext_stack

import rnnpy
from rnnpy.nn import precision

pytestmark = pytest.mark.skipif(precision.bf16_hardware() is None,
                                reason="needs AMX-BF16 or AVX512-BF16")

U = 2.0 ** -8    # unit roundoff of bfloat16 (8-bit significand)
V = 2.0 ** -24   # float32's
KC = 256         # RNN_BF16_KC (csrc/bf16.h): depth of the products' K slices
ERRORS = ErrorTable("bfloat16 compute, relative error max|a-b| / max|b| against float64 "
                    "(rnnpy | torch bf16):")


def gamma(n):
    return n * V / (1 - n * V)


def product_bound(K, S, c0=0.0):
    """csrc/bf16.h's bound of one entry of a bf16 product with float32
    accumulation: S = sum_k |a_k||b_k| (the exact operands), c0 what the entry
    held before (a bias). n = K + 2 ceil(K / KC) + 2 roundings on a term's path."""
    n = K + 2 * math.ceil(K / KC) + 2
    return (2 * U + U * U) * S + gamma(n) * ((1 + 2 * U + U * U) * S + np.abs(c0))


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# -- one step against float64, within a derived bound ------------------------------
STEP_KINDS = ["RNN_TANH", "RNN_RELU", "LSTM", "LSTM_PEEPHOLE", "LSTM_PROJ", "GRU"]
STEP_SHAPES = [(3, 5, 7), (16, 64, 32), (5, 300, 24), (33, 40, 130)]   # (B, I, H)
F32_SLACK = 64 * V   # absolute: float32 evaluation of a nonlinearity or an elementwise op


def _layer(kind, I, H, **kw):
    opts = {"RNN_TANH": (rnnpy.RNN, {"nonlinearity": "tanh"}),
            "RNN_RELU": (rnnpy.RNN, {"nonlinearity": "relu"}),
            "LSTM": (rnnpy.LSTM, {}), "LSTM_PEEPHOLE": (rnnpy.LSTM, {"peephole": True}),
            "LSTM_PROJ": (rnnpy.LSTM, {"proj_size": max(1, H // 3)}),
            "GRU": (rnnpy.GRU, {})}
    cls, extra = opts[kind]
    return cls(I, H, **extra, **kw)


def one_step_reference(kind, p, x, h, c):
    """float64 values of one step and the bound of each output's bf16 error:
    {name: (value, bound)} for h (and c)."""
    W, R = p["weight_ih_l0"], p["weight_hh_l0"]
    bi, bh = p["bias_ih_l0"], p["bias_hh_l0"]
    I, Hs = W.shape[1], R.shape[1]
    ax, ah = x @ W.T, h @ R.T
    # the two products, then the float32 sum of four terms (x W^T, b_ih, h R^T, b_hh)
    ex = product_bound(I, np.abs(x) @ np.abs(W).T, bi)
    eh = product_bound(Hs, np.abs(h) @ np.abs(R).T, bh)
    esum = gamma(3) * (np.abs(ax) + np.abs(bi) + np.abs(ah) + np.abs(bh))
    a = ax + bi + ah + bh
    if kind.startswith("RNN"):
        hn = np.tanh(a) if kind == "RNN_TANH" else np.maximum(a, 0)
        return {"h": (hn, ex + eh + esum + F32_SLACK)}   # tanh and relu are 1-Lipschitz
    G = a.shape[1] // (4 if kind.startswith("LSTM") else 3)
    blk = lambda v, k: v[:, k * G:(k + 1) * G]  # noqa: E731
    if kind == "GRU":
        ux, uh = ax + bi, ah + bh
        e_ux = blk(ex, 2) + gamma(1) * np.abs(blk(ux, 2))
        e_uh = blk(eh, 2) + gamma(1) * np.abs(blk(uh, 2))
        r, z = sigmoid(blk(a, 0)), sigmoid(blk(a, 1))
        dr = (blk(ex + eh + esum, 0)) / 4 + F32_SLACK   # sigmoid' <= 1/4
        dz = (blk(ex + eh + esum, 1)) / 4 + F32_SLACK
        pre = blk(ux, 2) + r * blk(uh, 2)
        n = np.tanh(pre)
        dpre = e_ux + dr * np.abs(blk(uh, 2)) + (r + dr) * e_uh + gamma(2) * (
            np.abs(blk(ux, 2)) + np.abs(r * blk(uh, 2)))
        dn = dpre + F32_SLACK   # tanh' <= 1
        hn = (1 - z) * n + z * h
        dh = dz * np.abs(n - h) + (1 - z + dz) * dn + gamma(3) * (np.abs((1 - z) * n) + np.abs(z * h)) \
            + F32_SLACK
        return {"h": (hn, dh)}
    ea = ex + eh + esum
    peep = p.get("weight_peep_l0")
    ai, af, ag, ao = (blk(a, k) for k in range(4))
    ei, ef, eg, eo = (blk(ea, k) for k in range(4))
    if peep is not None:   # elementwise float32: one product and one sum more
        ai, af = ai + peep[0] * c, af + peep[1] * c
        ei = ei + gamma(2) * (np.abs(ai) + np.abs(peep[0] * c))
        ef = ef + gamma(2) * (np.abs(af) + np.abs(peep[1] * c))
    i, f, g = sigmoid(ai), sigmoid(af), np.tanh(ag)
    di, df, dg = ei / 4 + F32_SLACK, ef / 4 + F32_SLACK, eg + F32_SLACK
    cn = f * c + i * g
    dc = df * np.abs(c) + (dg * (i + di) + di * np.abs(g)) + gamma(3) * (np.abs(f * c) + np.abs(i * g)) \
        + F32_SLACK
    if peep is not None:
        ao = ao + peep[2] * cn
        eo = eo + np.abs(peep[2]) * dc + gamma(2) * (np.abs(ao) + np.abs(peep[2] * cn))
    o = sigmoid(ao)
    do = eo / 4 + F32_SLACK
    hn = o * np.tanh(cn)
    dh = do * np.abs(np.tanh(cn)) + (o + do) * dc + gamma(2) * np.abs(hn) + F32_SLACK
    Wr = p.get("weight_hr_l0")
    if Wr is not None:   # h = W_hr (o tanh c): a third product (K = H) of a perturbed operand
        dh = product_bound(Wr.shape[1], np.abs(hn) @ np.abs(Wr).T) + (dh @ np.abs(Wr).T) * (1 + 2 * U) \
            + gamma(Wr.shape[1]) * (np.abs(hn) @ np.abs(Wr).T)
        hn = hn @ Wr.T
    return {"h": (hn, dh), "c": (cn, dc)}


@pytest.mark.parametrize("shape", STEP_SHAPES, ids=lambda s: "B{}-I{}-H{}".format(*s))
@pytest.mark.parametrize("kind", STEP_KINDS)
def test_one_step_within_bound(kind, shape):
    """One step from a given state, every output within a bound from u = 2^-8.

    Derivation. Each product entry (K = I for x W_ih^T, K = H for h W_hh^T)
    is within csrc/bf16.h's bound, (2u + u^2) S + gamma(n) ((1 + 2u + u^2) S
    + |b|), S = sum_k |w_k||x_k|, gamma(n) = n v / (1 - n v), v = 2^-24,
    n = K + 2 ceil(K / 256) + 2 (product_bound); the pre-activation a adds
    both with the biases in float32 (gamma(3) of the terms' magnitudes), so
    |da| <= e_x + e_h + gamma(3) (|x W^T| + |b_ih| + |h W_hh^T| + |b_hh|).
    The gates are Lipschitz: sigmoid' <= 1/4, tanh' <= 1, relu 1, so
    |d sig(a)| <= |da| / 4 and |d tanh(a)| <= |da|. Through the products of
    the state update, |d(pq)| <= |dp||q| + (|p| + |dp|)|dq|:
      LSTM  dc = |c_0| df + (i + di) dg + |g| di,  dh = |tanh c| do + (o + do) dc
            (peepholes: the o gate also sees |p_o| dc; with proj_size, h = W_hr m for
            m = o tanh c: dh = bound(K = H, |W_hr||m|) + (1 + 2u)|W_hr| dm)
      GRU   dn = |du_n| + dr |v_n| + (r + dr)|dv_n|,  dh = dz |n - h_0| + (1 - z + dz) dn
            (u_n = W_in x + b_in and v_n = W_hn h + b_hn are the two products apart)
    plus gamma(k) of the magnitudes for the k float32 roundings of each
    elementwise line and F32_SLACK = 64 v for each float32 nonlinearity.
    The bound holds entry by entry; the test also asserts the rounding is
    there (bf16 differs from the float32 compute) and that the bound is not
    vacuous (the largest error is a fair fraction of it)."""
    B, I, H = shape
    rng = np.random.default_rng(sum(shape) + len(kind))
    m = _layer(kind, I, H, seed=5, compute_dtype="bfloat16")
    x = rng.standard_normal((B, 1, I)).astype(np.float32)
    h0 = (0.8 * rng.standard_normal((1, B, m.state_size))).astype(np.float32)
    c0 = rng.standard_normal((1, B, H)).astype(np.float32)
    lstm = kind.startswith("LSTM")
    st = (h0, c0) if lstm else h0
    out, state = m.forward(x, st)
    m.compute_dtype = "float32"
    out32, _ = m.forward(x, st)
    p = {k: v.astype(np.float64) for k, v in m.params.items()}
    ref = one_step_reference(kind, p, x[:, 0].astype(np.float64), h0[0].astype(np.float64),
                             c0[0].astype(np.float64))
    got = {"h": state[0][0] if lstm else state[0]}
    if lstm:
        got["c"] = state[1][0]
    np.testing.assert_array_equal(out[:, 0], got["h"])
    assert np.any(out != out32), "bfloat16 gave float32's bits: the products were not rounded"
    for name, (value, bound) in ref.items():
        err = np.abs(got[name].astype(np.float64) - value)
        worst = float(np.max(err / bound))
        assert worst <= 1.0, (f"{name}: error {err.max():.3e} exceeds its bound at "
                              f"{worst:.2f}x (bound there {bound.flat[np.argmax(err / bound)]:.3e})")
        assert worst > 1e-3, f"{name}: largest error is {worst:.1e} of the bound: the bound is vacuous"
        ERRORS.record((f"one step {kind} {shape} {name}: error / bound", ""), worst)


# -- sequences and gradients: no worse than PyTorch's bfloat16 ---------------------
# (kind, options): torch.nn runs the plain cells in bf16 (its own RNN kernels);
# the options torch.nn lacks run through tests/torch_ext.py, whose ops then run in bf16
SEQ_CONFIGS = [
    ("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn_relu", {}),
    ("lstm", {"proj_size": 5}),
    ("lstm", {"peephole": True}),
    ("lstm", {"layer_norm": True}),
    ("lstm", {"zoneout": (0.2, 0.3), "recurrent_dropout": 0.25}),
    ("gru", {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.3}),
    ("rnn", {"recurrent_dropout": 0.3}),
]
# (T, B, I, H, num_layers, bidirectional, time_major, lengths)
SEQ_SHAPES = [
    (6, 4, 5, 12, 2, True, False, [6, 3, 1, 5]),
    (9, 17, 40, 32, 1, False, True, None),
    (4, 3, 70, 48, 2, False, False, [2, 4, 3]),
]
TORCH_FACTOR = 1.5   # rnnpy's error may be at most this times torch bf16's
REPEATS = 15         # draws of the relu RNN, whose gradients are compared by the median


def _seq_id(c):
    return c[0] + "".join(f"-{k}={v}" for k, v in c[1].items())


def _make_seq(kind, opts, shape, seed):
    T, B, I, H, L, bi, tm, lengths = shape
    cls = {"lstm": rnnpy.LSTM, "gru": rnnpy.GRU, "rnn": rnnpy.RNN, "rnn_relu": rnnpy.RNN}[kind]
    kw = dict(opts, nonlinearity="relu") if kind == "rnn_relu" else dict(opts)
    m = cls(I, H, num_layers=L, bidirectional=bi, time_major=tm, seed=seed,
            compute_dtype="bfloat16", **kw)
    rng = np.random.default_rng(seed + 100)
    for name, v in m.params.items():   # layer-norm gains away from 1, a bias away from 0
        if name.startswith("ln_weight_"):
            v[...] = rng.uniform(0.5, 1.5, v.shape)
        elif name.startswith("ln_bias_"):
            v[...] = rng.uniform(-0.5, 0.5, v.shape)
    return m


def _draw(m, shape, seed):
    T, B, I, H, L, bi, tm, lengths = shape
    rng = np.random.default_rng(seed + 1)
    D, Hs = m.num_directions, m.state_size
    x = rng.standard_normal((T, B, I) if tm else (B, T, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((L * D, B, Hs))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(np.float32)
    return rng, x, h0, c0


def _run_rnnpy(m, kind, shape, x, h0, c0, rng):
    """forward + backward with random output and final-state gradients."""
    lengths = shape[-1]
    lstm = kind == "lstm"
    out, st = m.forward(x, (h0, c0) if lstm else h0, lengths)
    hT, cT = st if lstm else (st, None)
    R = rng.standard_normal(out.shape).astype(np.float32)
    S = rng.standard_normal(hT.shape).astype(np.float32)
    Uc = rng.standard_normal(cT.shape).astype(np.float32) if lstm else None
    m.zero_grad()
    dx, dst = m.backward(R, (S, Uc) if lstm else S)
    dh0, dc0 = dst if lstm else (dst, None)
    res = {"out": out, "hT": hT, "dx": dx, "dh0": dh0}
    if lstm:
        res.update(cT=cT, dc0=dc0)
    res.update({f"grad {k}": g.copy() for k, g in m.grads.items()})
    return res, (R, S, Uc)


def _run_torch(torch, m, kind, opts, shape, x, h0, c0, dys, dtype, native):
    """The same computation in torch at dtype (float64: the reference), through
    torch.nn when native (the plain cells), else tests/torch_ext.py."""
    T, B, I, H, L, bi, tm, lengths = shape
    lstm = kind == "lstm"
    R, S, Uc = dys

    def t(a, grad=False):
        return torch.tensor(np.asarray(a, np.float64)).to(dtype).requires_grad_(grad)

    xt, h0t = t(x, True), t(h0, True)
    c0t = t(c0, True) if lstm else None
    if native:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
        kw = {"nonlinearity": "relu" if kind == "rnn_relu" else "tanh"} if cls is torch.nn.RNN else {}
        if opts.get("proj_size"):
            kw["proj_size"] = opts["proj_size"]
        mod = cls(I, H, num_layers=L, bidirectional=bi, batch_first=not tm, dtype=dtype, **kw)
        mod.load_state_dict({k: t(v) for k, v in m.params.items()})
        hx = (h0t, c0t) if lstm else h0t
        if lengths is None:
            o, st = mod(xt, hx)
        else:
            packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=not tm,
                                          enforce_sorted=False)
            o, st = mod(packed, hx)
            o, _ = pad_packed_sequence(o, batch_first=not tm, total_length=T)
        hn, cn = st if lstm else (st, None)
        named = dict(mod.named_parameters())
    else:
        named = {k: t(v, True) for k, v in m.params.items()}
        masks = []
        for cm in m._last["cell_masks"]:
            tmk = {}
            for k, v in cm.items():
                if k != "rec_mask" and v.ndim == 3 and not tm:
                    v = v.transpose(1, 0, 2)
                tmk[k] = t(v)
            masks.append(tmk)
        lens = np.full(B, T) if lengths is None else np.asarray(lengths)
        valid = torch.tensor(np.arange(T)[:, None, None] < lens[None, :, None])
        xin = xt if tm else xt.transpose(0, 1)
        o, hn, cn = torch_ext_stack(torch, "rnn" if kind == "rnn_relu" else kind, named, xin,
                                    h0t, c0t, valid, L, m.num_directions, masks,
                                    relu=kind == "rnn_relu")
        o = o if tm else o.transpose(0, 1)
    loss = (o * t(R)).sum() + (hn * t(S)).sum() + ((cn * t(Uc)).sum() if lstm else 0)
    loss.backward()
    f = lambda a: a.detach().to(torch.float64).numpy()  # noqa: E731
    res = {"out": f(o), "hT": f(hn), "dx": f(xt.grad), "dh0": f(h0t.grad)}
    if lstm:
        res.update(cT=f(cn), dc0=f(c0t.grad))
    res.update({f"grad {k}": f(named[k].grad) for k in m.params})
    return res


@pytest.mark.parametrize("shape", SEQ_SHAPES, ids=["L2-bi-batchfirst-ragged", "L1-timemajor",
                                                   "L2-K70-ragged"])
@pytest.mark.parametrize("cfg", SEQ_CONFIGS, ids=_seq_id)
def test_sequences_and_gradients_no_worse_than_torch_bf16(cfg, shape):
    """Outputs, final states and every gradient (x, h0, c0, each weight and
    bias) of a bf16-compute layer against float64 autograd on the same float32
    values: max|a - b| / max|b| at most 1.5x that of PyTorch in bfloat16 (module
    or ops, weights and inputs in torch.bfloat16) on the same weights.

    The relu RNN's gradient jumps where a pre-activation crosses zero: a
    pre-activation within the rounding of zero (|a| ~ 1e-4) can land on
    either side in any bf16 computation, switching a unit's whole gradient on
    or off. Which of the two implementations flips one in a given draw is
    chance (over 60 draws of the first shape rnnpy flipped 26 such units,
    torch 33), so for that cell the gradients are compared by the median
    error over REPEATS = 15 draws, and the outputs draw by draw."""
    torch = import_torch()
    kind, opts = cfg
    seeds = range(11, 11 + (REPEATS if kind == "rnn_relu" else 1))
    ours, theirs = {}, {}
    for seed in seeds:
        m = _make_seq(kind, opts, shape, seed=seed)
        m.train(True)
        rng, x, h0, c0 = _draw(m, shape, seed)
        got, dys = _run_rnnpy(m, kind, shape, x, h0, c0, rng)
        native = not opts or set(opts) == {"proj_size"}
        ref = _run_torch(torch, m, kind, opts, shape, x, h0, c0, dys, torch.float64, native)
        low = _run_torch(torch, m, kind, opts, shape, x, h0, c0, dys, torch.bfloat16, native)
        for name in got:
            ours.setdefault(name, []).append(rel_err(got[name], ref[name]))
            theirs.setdefault(name, []).append(rel_err(low[name], ref[name]))
    worst = (0.0, 0.0)
    for name in ours:
        forward = name in ("out", "hT", "cT")
        pairs = list(zip(ours[name], theirs[name])) if forward or len(seeds) == 1 else \
            [(float(np.median(ours[name])), float(np.median(theirs[name])))]
        for a, b in pairs:
            assert a <= TORCH_FACTOR * b, (
                f"{name}: rnnpy bf16 error {a:.3e} > {TORCH_FACTOR} x torch bf16's {b:.3e}")
            worst = max(worst, (a, b))
    ERRORS.record((f"{_seq_id(cfg)} {shape[:7]}", "rnnpy"), worst[0])
    ERRORS.record((f"{_seq_id(cfg)} {shape[:7]}", "torch"), worst[1])


# -- the gradients are those of the bf16 forward ----------------------------------
# max|bf16 - float32| / max|float32| over outputs and gradients, in units of u:
# measured at most ~2u for the plain cells and their options (products rounded
# once per step, errors that do not grow over these lengths); layer norm divides
# a product by the standard deviation of its G*H entries, which amplifies the
# product's absolute rounding by sum|w||h| / std (measured up to ~46u)
GRAD_TOL_U = {"plain": 4, "layer_norm": 64}


@pytest.mark.parametrize("shape", SEQ_SHAPES, ids=["L2-bi-batchfirst-ragged", "L1-timemajor",
                                                   "L2-K70-ragged"])
@pytest.mark.parametrize("cfg", [c for c in SEQ_CONFIGS if c[0] != "rnn_relu"], ids=_seq_id)
def test_gradients_follow_the_bf16_forward(cfg, shape):
    """bf16 outputs and gradients against float32's on the same weights, inputs
    and masks: within GRAD_TOL_U[...] * u, u = 2^-8.

    Finite differences do not apply to bf16: each call rounds the weights and
    activations to 8 significant bits, so the bf16 forward is a step function
    of the weights at the scale u |w| ~ 4e-3 |w|; a difference quotient with a
    step below that is zero or a jump, and one above it measures curvature.
    The float32 gradients are checked by finite differences elsewhere
    (rnnpy.gradcheck); here the bf16 ones must agree with them to a multiple
    of u. Backward rounds the operands of its own products (dA W, dA^T x) the
    same way, which is why the tolerance is in u, not float32's 2^-24.
    The relu RNN is left out: its gradient jumps where a pre-activation
    rounds across zero (see the torch comparison above)."""
    kind, opts = cfg
    m = _make_seq(kind, opts, shape, seed=3)
    m.train(True)
    rng, x, h0, c0 = _draw(m, shape, 3)
    bf16, _ = _run_rnnpy(m, kind, shape, x, h0, c0, rng)
    with m.masks_held():   # the same zoneout and recurrent-dropout masks
        m.compute_dtype = "float32"
        rng, x, h0, c0 = _draw(m, shape, 3)
        f32, _ = _run_rnnpy(m, kind, shape, x, h0, c0, rng)
    tol = GRAD_TOL_U["layer_norm" if opts.get("layer_norm") else "plain"] * U
    for name in bf16:
        err = rel_err(bf16[name], f32[name])
        assert err <= tol, f"{name}: bf16 vs float32 {err / U:.2f}u > {tol / U:.0f}u"
        assert err > 0 or not np.any(f32[name]), f"{name}: bf16 gave float32's bits"


# -- threads --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dims", [(7, 48, 24, 96, True), (5, 3, 70, 40, False)],
                         ids=["B48-bi", "B3"])
def test_bits_identical_across_threads(kind, dims):
    """threads=1 and threads=2 give the same bits in bf16: outputs, states and
    every gradient (the products' K slices are summed in a fixed order)."""
    T, B, I, H, bi = dims
    cls = {"lstm": rnnpy.LSTM, "gru": rnnpy.GRU, "rnn": rnnpy.RNN}[kind]
    rng = np.random.default_rng(T * B)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lengths = rng.integers(1, T + 1, B)
    results = []
    for threads in (1, 2):
        m = cls(I, H, num_layers=2, bidirectional=bi, seed=4, threads=threads,
                compute_dtype="bfloat16")
        out, st = m.forward(x, lengths=lengths)
        dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
        m.zero_grad()
        dx, _ = m.backward(dout)
        hT = st[0] if kind == "lstm" else st
        results.append((out, hT, dx, m.flat_grads.copy()))
    for a, b, name in zip(results[0], results[1], ("out", "hT", "dx", "grads")):
        assert np.array_equal(a, b), f"{name}: threads 1 and 2 differ"
