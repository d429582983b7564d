"""A peephole LSTM direction written with torch autograd: the reference the
peephole cell is compared against (torch.nn has no peephole LSTM). Shared by
tests/test_reference.py and tests/test_torch_parity.py."""


def torch_peephole_dir(torch, x, h, c, w_ih, w_hh, b_ih, b_hh, p, mask, reverse):
    """One direction of a peephole LSTM: x (T, B, I), mask (T, B, 1) bool, p (3, H)."""
    T = x.shape[0]
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i = torch.sigmoid(a_i + p[0] * c)
        f = torch.sigmoid(a_f + p[1] * c)
        g = torch.tanh(a_g)
        cn = f * c + i * g
        o = torch.sigmoid(a_o + p[2] * cn)
        hn = o * torch.tanh(cn)
        h = torch.where(mask[t], hn, h)
        c = torch.where(mask[t], cn, c)
        outs[t] = torch.where(mask[t], hn, torch.zeros_like(hn))
    return torch.stack(outs), h, c
