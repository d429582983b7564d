"""The extended cells (layer norm, zoneout, recurrent dropout, projection,
peepholes, in any combination) written with torch autograd, one direction
at a time and stacked like rnnpy's layers: the reference tests/nn/test_ext_cells.py
compares rnnpy against, and tests/nn/test_torch_parity.py and test_reference.py
compare the peephole LSTM against (torch.nn has none of these but the
projection).

Everything is time-major here: x (T, B, I), masks (T, B, n) or (n,)."""

EPS = 1e-5


def _ln(torch, v, gain):
    mu = v.mean(dim=-1, keepdim=True)
    var = ((v - mu) ** 2).mean(dim=-1, keepdim=True)
    return (v - mu) / torch.sqrt(var + EPS) * gain


def _step_mask(m, t):
    """Row t of a zoneout mask given per step (T, B, n) or as one row (n,)."""
    if m is None:
        return None
    return m[t] if m.dim() == 3 else m


def torch_ext_dir(torch, kind, x, h, c, p, masks, valid, reverse, relu=False):
    """One direction of one layer.

    kind: "rnn", "lstm" or "gru"; p: dict of tensors under rnnpy's per-cell
    names (weight_ih, weight_hh, bias_ih, bias_hh and, when present,
    weight_peep, weight_hr, ln_weight_ih, ln_weight_hh, ln_weight_c, ln_bias_c);
    masks: dict with optional rec_mask (B, Hs), zoneout_h, zoneout_c;
    valid: (T, B, 1) bool, False on padded steps. Returns (out, hT, cT)."""
    T = x.shape[0]
    outs = [None] * T
    rec, zh, zc = masks.get("rec_mask"), masks.get("zoneout_h"), masks.get("zoneout_c")
    ln = "ln_weight_ih" in p
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        hin = h * rec if rec is not None else h
        u = x[t] @ p["weight_ih"].T
        v = hin @ p["weight_hh"].T
        if ln:
            u = _ln(torch, u, p["ln_weight_ih"])
            v = _ln(torch, v, p["ln_weight_hh"])
        u = u + p["bias_ih"]
        v = v + p["bias_hh"]
        cn = None
        if kind == "lstm":
            a_i, a_f, a_g, a_o = (u + v).chunk(4, dim=1)
            if "weight_peep" in p:
                a_i = a_i + p["weight_peep"][0] * c
                a_f = a_f + p["weight_peep"][1] * c
            i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
            cn = f * c + i * g
            if "weight_peep" in p:
                a_o = a_o + p["weight_peep"][2] * cn
            o = torch.sigmoid(a_o)
            cc = _ln(torch, cn, p["ln_weight_c"]) + p["ln_bias_c"] if ln else cn
            hn = o * torch.tanh(cc)
            if "weight_hr" in p:
                hn = hn @ p["weight_hr"].T
            if zc is not None:
                m = _step_mask(zc, t)
                cn = m * c + (1 - m) * cn
        elif kind == "gru":
            u_r, u_z, u_n = u.chunk(3, dim=1)
            v_r, v_z, v_n = v.chunk(3, dim=1)
            r, z = torch.sigmoid(u_r + v_r), torch.sigmoid(u_z + v_z)
            n = torch.tanh(u_n + r * v_n)
            hn = (1 - z) * n + z * h
        else:
            hn = torch.relu(u + v) if relu else torch.tanh(u + v)
        if zh is not None:
            m = _step_mask(zh, t)
            hn = m * h + (1 - m) * hn
        h = torch.where(valid[t], hn, h)
        if cn is not None:
            c = torch.where(valid[t], cn, c)
        outs[t] = torch.where(valid[t], hn, torch.zeros_like(hn))
    return torch.stack(outs), h, c


def torch_ext_stack(torch, kind, params, x, h0, c0, valid, L, D, cell_masks, relu=False):
    """A whole layer: params {rnnpy name: tensor}, x (T, B, I), h0 (L*D, B, Hs),
    c0 (L*D, B, H) or None, cell_masks [dict per cell, time-major]. Returns
    (out (T, B, D*Hs), hT (L*D, B, Hs), cT or None); no dropout between layers."""
    inp, hs, cs = x, [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            k = layer * D + d
            p = {name[:-len(sfx)]: v for name, v in params.items() if name.endswith(sfx)}
            o, h, c = torch_ext_dir(torch, kind, inp, h0[k], None if c0 is None else c0[k], p,
                                    cell_masks[k], valid, bool(d), relu)
            outs.append(o)
            hs.append(h)
            cs.append(c)
        inp = torch.cat(outs, dim=2)
    return inp, torch.stack(hs), (torch.stack(cs) if c0 is not None else None)
