"""The NumPy reference of the extended cells: every option of rnnpy's kernels.

The plain cells, the helpers and the conventions (time-major, masks from
lengths, the order of steps) are in rnnpy/_reference.py; this module adds
what csrc/cells_ext.h adds, readably, in float64.
"""
import numpy as np

from ._reference import _mask, _steps, _with_cache, sigmoid

# The extended cells (csrc/cells_ext.h): layer norm, zoneout, recurrent
# dropout and projection, alone or together, on every cell kind they apply
# to, plus peepholes. The masks are inputs held fixed (not differentiated):
#   rec_mask   (B, Hs)           m_b, multiplies h_{t-1} where it enters W_hh
#   zoneout_h  (T, B, Hs) or (Hs,)  1 keeps h_{t-1}, 0 takes the new value
#   zoneout_c  (T, B, H) or (H,)    the same for the LSTM's c
# (per step in training, one row of probabilities in evaluation). Hs is the
# size of h: P for a projected LSTM, else H.
#
# LSTM with every option (p = 0 without peepholes, LN = identity and gains 1
# without layer norm, W_hr = identity without projection):
#   a   = ln_ih*LN(W_ih x_t) + b_ih + ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
#   i   = sig(a_i + p_i*c_{t-1})   f = sig(a_f + p_f*c_{t-1})   g = tanh(a_g)
#   c~  = f*c_{t-1} + i*g          o = sig(a_o + p_o*c~)
#   u   = o * tanh(ln_c*LN(c~) + ln_c_bias)        h~ = W_hr u
#   c_t = zc*c_{t-1} + (1-zc)*c~   h_t = zh*h_{t-1} + (1-zh)*h~    out_t = h_t
# GRU:
#   u = ln_ih*LN(W_ih x_t) + b_ih        v = ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
#   r = sig(u_r + v_r)   z = sig(u_z + v_z)   n = tanh(u_n + r*v_n)
#   h~ = (1-z)*n + z*h_{t-1}             h_t = zh*h_{t-1} + (1-zh)*h~
# RNN: h~ = act(W_ih x_t + b_ih + W_hh (m_b*h_{t-1}) + b_hh), no layer norm,
#   h_t = zh*h_{t-1} + (1-zh)*h~.
# LN(v) = (v - mean(v)) / sqrt(var(v) + LN_EPS) over a row's G*H (or H)
# values, var the biased variance.
#
# Parameters use the layer's per-cell names: weight_ih, weight_hh, bias_ih,
# bias_hh and, when their option is on, weight_peep (3, H), weight_hr (P, H),
# ln_weight_ih (GH,), ln_weight_hh (GH,), ln_weight_c (H,), ln_bias_c (H,).

LN_EPS = 1e-5
EXT_KINDS = ("rnn", "lstm", "gru")
__all__ = ["LN_EPS", "EXT_KINDS", "layer_norm_forward", "layer_norm_backward",
           "ext_cell_forward", "ext_cell_backward", "ext_stack_forward", "ext_stack_backward"]


def layer_norm_forward(v):
    """Normalises each row of v (B, N): returns LN(v) (B, N) and 1/std (B, 1)."""
    mu = v.mean(axis=-1, keepdims=True)
    var = ((v - mu) ** 2).mean(axis=-1, keepdims=True)
    rs = 1.0 / np.sqrt(var + LN_EPS)
    return (v - mu) * rs, rs


def layer_norm_backward(dy, y, rs):
    """dL/dv of y = LN(v) (B, N), given dy = dL/dy, y and rs from the forward."""
    return rs * (dy - dy.mean(axis=-1, keepdims=True) - y * (dy * y).mean(axis=-1, keepdims=True))


def _zoneout_row(mask, t):
    """The zoneout mask of step t: (B, n) from a per-step (T, B, n) mask,
    the row itself when one row (n,) serves every step, None when off."""
    if mask is None:
        return None
    return mask[t] if mask.ndim == 3 else mask


def ext_cell_forward(kind, x, h0, c0, p, masks=None, *, relu=False, lengths=None,
                     reverse=False, return_cache=False):
    """One direction of an extended cell, time-major.

    kind: "rnn", "lstm" or "gru" (relu=True: the RNN's relu). x (T, B, I),
    h0 (B, Hs), c0 (B, H) (LSTM, else None); p: dict of the per-cell
    parameters named above; masks: dict with optional rec_mask, zoneout_h,
    zoneout_c (see above), or None.
    Returns out (T, B, Hs), hT (B, Hs), cT (B, H) or None[, cache].
    """
    if kind not in EXT_KINDS:
        raise ValueError(f"kind: expected one of {EXT_KINDS}, got {kind!r}")
    x = np.asarray(x)
    dt = x.dtype
    p = {k: np.asarray(v, dt) for k, v in p.items()}
    masks = {k: np.asarray(v, dt) for k, v in (masks or {}).items()}
    rec = masks.get("rec_mask")
    zh_mask, zc_mask = masks.get("zoneout_h"), masks.get("zoneout_c")
    lstm = kind == "lstm"
    ln = "ln_weight_ih" in p
    T, B, _ = x.shape
    H = p["weight_hh"].shape[0] // {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    Hs = p["weight_hh"].shape[1]
    peep = p.get("weight_peep", np.zeros((3, H), dt))
    m = _mask(lengths, T, B, dt)
    h = np.zeros((B, Hs), dt) if h0 is None else np.array(h0, dt)
    c = (np.zeros((B, H), dt) if c0 is None else np.array(c0, dt)) if lstm else None
    out = np.zeros((T, B, Hs), dt)
    steps = [None] * T                      # what backward needs, per step
    for t in _steps(T, reverse):
        s = dict(h=h, c=c)
        hm = h * rec if rec is not None else h
        s["hm"] = hm
        ux = x[t] @ p["weight_ih"].T
        vh = hm @ p["weight_hh"].T
        if ln:
            s["xn"], s["rx"] = layer_norm_forward(ux)
            s["hn"], s["rh"] = layer_norm_forward(vh)
            ux = p["ln_weight_ih"] * s["xn"]
            vh = p["ln_weight_hh"] * s["hn"]
        u = ux + p["bias_ih"]
        v = vh + p["bias_hh"]
        cn = None
        if lstm:
            a_i, a_f, a_g, a_o = np.split(u + v, 4, axis=1)
            i = sigmoid(a_i + peep[0] * c)
            f = sigmoid(a_f + peep[1] * c)
            g = np.tanh(a_g)
            cn = f * c + i * g
            o = sigmoid(a_o + peep[2] * cn)
            if ln:
                s["cn"], s["rc"] = layer_norm_forward(cn)
                y = p["ln_weight_c"] * s["cn"] + p["ln_bias_c"]
            else:
                y = cn
            ty = np.tanh(y)
            uo = o * ty
            hn = uo @ p["weight_hr"].T if "weight_hr" in p else uo
            s.update(i=i, f=f, g=g, o=o, ct=cn, ty=ty, uo=uo)
            zc = _zoneout_row(zc_mask, t)
            if zc is not None:
                s["zc"] = zc
                cn = zc * c + (1 - zc) * cn
        elif kind == "gru":
            u_r, u_z, u_n = np.split(u, 3, axis=1)
            v_r, v_z, v_n = np.split(v, 3, axis=1)
            r = sigmoid(u_r + v_r)
            z = sigmoid(u_z + v_z)
            n = np.tanh(u_n + r * v_n)
            hn = (1 - z) * n + z * h
            s.update(r=r, z=z, n=n, v_n=v_n)
        else:
            a = u + v
            hn = np.maximum(a, 0) if relu else np.tanh(a)
            s["hn_act"] = hn
        zh = _zoneout_row(zh_mask, t)
        if zh is not None:
            s["zh"] = zh
            hn = zh * h + (1 - zh) * hn
        h = m[t] * hn + (1 - m[t]) * h
        if lstm:
            c = m[t] * cn + (1 - m[t]) * c
        out[t] = m[t] * hn
        steps[t] = s
    return _with_cache((out, h, c), return_cache, kind=kind, relu=relu, x=x, p=p, rec=rec,
                       m=m, steps=steps, reverse=reverse, H=H, Hs=Hs, ln=ln)


def ext_cell_backward(dout, dhT, dcT, cache):
    """Gradients of ext_cell_forward(..., return_cache=True). dout (T, B, Hs),
    dhT (B, Hs), dcT (B, H) (LSTM), any may be None.

    Returns dx (T, B, I), dh0 (B, Hs), dc0 (B, H) or None, and a dict of
    parameter gradients under the names of p (masks get none).
    """
    kind, x, p, rec, m = cache["kind"], cache["x"], cache["p"], cache["rec"], cache["m"]
    H, Hs, ln, lstm = cache["H"], cache["Hs"], cache["ln"], cache["kind"] == "lstm"
    dt = x.dtype
    T, B, _ = x.shape
    dout = np.zeros((T, B, Hs), dt) if dout is None else np.asarray(dout, dt)
    dh = np.zeros((B, Hs), dt) if dhT is None else np.array(dhT, dt)
    dc = (np.zeros((B, H), dt) if dcT is None else np.array(dcT, dt)) if lstm else None
    dx = np.zeros_like(x)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    peep = p.get("weight_peep", np.zeros((3, H), dt))
    for t in _steps(T, not cache["reverse"]):
        s, mt = cache["steps"][t], m[t]
        dhn = mt * (dh + dout[t])            # dL/dh_t where the step is valid
        dh_prev = (1 - mt) * dh              # a skipped step passes its gradient through
        if "zh" in s:
            dh_prev = dh_prev + dhn * s["zh"]
            dhn = dhn * (1 - s["zh"])        # now dL/dh~
        if lstm:
            dcn = mt * dc
            dc_prev = (1 - mt) * dc
            if "zc" in s:
                dc_prev = dc_prev + dcn * s["zc"]
                dcn = dcn * (1 - s["zc"])    # now dL/dc~ through the carried state
            i, f, gg, o, ct, cp = s["i"], s["f"], s["g"], s["o"], s["ct"], s["c"]
            if "weight_hr" in p:
                g["weight_hr"] += dhn.T @ s["uo"]
                du = dhn @ p["weight_hr"]
            else:
                du = dhn
            do = du * s["ty"]
            dy = du * o * (1 - s["ty"] ** 2)
            if ln:
                g["ln_weight_c"] += (dy * s["cn"]).sum(0)
                g["ln_bias_c"] += dy.sum(0)
                dct = dcn + layer_norm_backward(dy * p["ln_weight_c"], s["cn"], s["rc"])
            else:
                dct = dcn + dy
            da_o = do * o * (1 - o)
            dct = dct + da_o * peep[2]
            da_i = dct * gg * i * (1 - i)
            da_f = dct * cp * f * (1 - f)
            da_g = dct * i * (1 - gg ** 2)
            dc = dc_prev + dct * f + da_i * peep[0] + da_f * peep[1]
            if "weight_peep" in p:
                g["weight_peep"] += np.stack([(da_i * cp).sum(0), (da_f * cp).sum(0),
                                              (da_o * ct).sum(0)])
            du_pre = dv_pre = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        elif kind == "gru":
            r, z, n, v_n, hp = s["r"], s["z"], s["n"], s["v_n"], s["h"]
            dh_prev = dh_prev + dhn * z
            da_n = dhn * (1 - z) * (1 - n ** 2)
            da_z = dhn * (hp - n) * z * (1 - z)
            da_r = da_n * v_n * r * (1 - r)
            du_pre = np.concatenate([da_r, da_z, da_n], axis=1)
            dv_pre = np.concatenate([da_r, da_z, da_n * r], axis=1)
        else:
            if cache["relu"]:
                da = dhn * (s["hn_act"] > 0)
            else:
                da = dhn * (1 - s["hn_act"] ** 2)
            du_pre = dv_pre = da
        g["bias_ih"] += du_pre.sum(0)
        g["bias_hh"] += dv_pre.sum(0)
        if ln:
            g["ln_weight_ih"] += (du_pre * s["xn"]).sum(0)
            g["ln_weight_hh"] += (dv_pre * s["hn"]).sum(0)
            dux = layer_norm_backward(du_pre * p["ln_weight_ih"], s["xn"], s["rx"])
            dvh = layer_norm_backward(dv_pre * p["ln_weight_hh"], s["hn"], s["rh"])
        else:
            dux, dvh = du_pre, dv_pre
        dx[t] = dux @ p["weight_ih"]
        g["weight_ih"] += dux.T @ x[t]
        g["weight_hh"] += dvh.T @ s["hm"]
        dhm = dvh @ p["weight_hh"]
        dh = dh_prev + (dhm * rec if rec is not None else dhm)
    return dx, dh, dc, g


def _ext_names(layer, direction):
    return f"_l{layer}" + ("_reverse" if direction else "")


def ext_stack_forward(kind, params, x, state=None, lengths=None, *, num_layers=1,
                      bidirectional=False, cell_masks=None, relu=False, batch_first=True,
                      return_cache=False):
    """A stack of extended cells, as rnnpy's RNN/LSTM/GRU layers (no dropout
    between layers).

    params: {rnnpy name (weight_ih_l0, ln_weight_c_l1_reverse, ...): array}.
    x (B, T, I) if batch_first else (T, B, I). state: h (L*D, B, Hs), for the
    LSTM a tuple (h, c) with c (L*D, B, H); None means zeros. cell_masks: one
    dict per cell (layer-major, then direction), with per-step zoneout masks
    laid out like x ((B, T, n) if batch_first), or None.
    Returns out (like x, D*Hs features) and the final state in the form of
    `state`[, cache].
    """
    x = np.asarray(x)
    dt = x.dtype
    xt = np.swapaxes(x, 0, 1) if batch_first else x
    T, B, _ = xt.shape
    D = 2 if bidirectional else 1
    Hs = np.asarray(params["weight_hh_l0"]).shape[1]
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    H = np.asarray(params["weight_hh_l0"]).shape[0] // G
    lstm = kind == "lstm"
    if state is None:
        h0, c0 = np.zeros((num_layers * D, B, Hs), dt), np.zeros((num_layers * D, B, H), dt)
    elif lstm:
        h0, c0 = np.asarray(state[0], dt), np.asarray(state[1], dt)
    else:
        h0, c0 = np.asarray(state, dt), None
    hn = np.zeros((num_layers * D, B, Hs), dt)
    cn = np.zeros((num_layers * D, B, H), dt)
    caches = []
    inp = xt
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            sfx = _ext_names(layer, d)
            p = {n[:-len(sfx)]: v for n, v in params.items() if n.endswith(sfx)}
            cm = dict(cell_masks[k]) if cell_masks else {}
            for key in ("zoneout_h", "zoneout_c"):
                if key in cm and np.ndim(cm[key]) == 3 and batch_first:
                    cm[key] = np.swapaxes(cm[key], 0, 1)
            out, h, c, cache = ext_cell_forward(kind, inp, h0[k], c0[k] if lstm else None, p,
                                                cm, relu=relu, lengths=lengths,
                                                reverse=bool(d), return_cache=True)
            outs.append(out)
            hn[k] = h
            if lstm:
                cn[k] = c
            caches.append(cache)
        inp = np.concatenate(outs, axis=2)
    out = np.swapaxes(inp, 0, 1) if batch_first else inp
    st = (hn, cn) if lstm else hn
    return _with_cache((out, st), return_cache, kind=kind, caches=caches, L=num_layers, D=D,
                       Hs=Hs, H=H, batch_first=batch_first, dtype=dt, T=T, B=B)


def ext_stack_backward(cache, dout, dstate=None):
    """Gradients of ext_stack_forward(..., return_cache=True). dout like out
    (or None), dstate like the state (LSTM: (dh, dc), either may be None).
    Returns dx like x, dstate like the state, {rnnpy name: gradient}."""
    L, D, Hs, H = cache["L"], cache["D"], cache["Hs"], cache["H"]
    dt, T, B, lstm = cache["dtype"], cache["T"], cache["B"], cache["kind"] == "lstm"
    if dout is None:
        dcur = np.zeros((T, B, D * Hs), dt)
    else:
        dout = np.asarray(dout, dt)
        dcur = np.swapaxes(dout, 0, 1) if cache["batch_first"] else dout
    dh, dc = (dstate if lstm else (dstate, None)) if dstate is not None else (None, None)
    dh = np.zeros((L * D, B, Hs), dt) if dh is None else np.asarray(dh, dt)
    dc = np.zeros((L * D, B, H), dt) if dc is None else np.asarray(dc, dt)
    dh0, dc0 = np.zeros((L * D, B, Hs), dt), np.zeros((L * D, B, H), dt)
    grads = {}
    for layer in range(L - 1, -1, -1):
        dinp = None
        for d in range(D):
            k = layer * D + d
            dx, dhk, dck, g = ext_cell_backward(dcur[:, :, d * Hs:(d + 1) * Hs], dh[k],
                                                dc[k] if lstm else None, cache["caches"][k])
            dh0[k] = dhk
            if lstm:
                dc0[k] = dck
            grads.update({n + _ext_names(layer, d): v for n, v in g.items()})
            dinp = dx if dinp is None else dinp + dx
        dcur = dinp
    dx = np.swapaxes(dcur, 0, 1) if cache["batch_first"] else dcur
    return dx, ((dh0, dc0) if lstm else dh0), grads
