"""Finite-difference gradient checking for any rnnpy layer.

``gradcheck`` compares a layer's analytic gradients (from ``backward``) with
central differences of a random linear loss

    L = sum(out * R) + sum(h_n * S) (+ sum(c_n * U) for the LSTM)

with respect to every parameter (or a random sample of them), the input and
the initial state. It needs float64 and a deterministic forward (dropout
masks are held fixed while it runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class GradcheckResult:
    """Largest errors found, per checked quantity: name -> (abs err, rel err)."""

    errors: dict = field(default_factory=dict)
    checked: int = 0
    ok: bool = True
    failures: list = field(default_factory=list)

    def max_rel_error(self) -> float:
        return max((e[1] for e in self.errors.values()), default=0.0)


def _as_tuple(state: Any) -> tuple:
    if state is None:
        return ()
    return tuple(state) if isinstance(state, tuple) else (state,)


def gradcheck(
    layer: Any,
    x: Any,
    state: Any = None,
    lengths: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    max_checks: Optional[int] = 200,
    seed: int = 0,
    raise_exception: bool = True,
) -> GradcheckResult:
    """Checks layer.backward against central differences of forward.

    layer: an rnnpy layer (forward/backward/params/grads/zero_grad) in float64.
    x, state, lengths: arguments of layer.forward.
    eps: the finite-difference step; atol, rtol: |analytic - numeric| must
        be <= atol + rtol * |numeric| for every checked entry.
    max_checks: at most this many entries are sampled per array (None = all).
    Returns a GradcheckResult; raises AssertionError on a mismatch when
    raise_exception is true.
    """
    if np.dtype(getattr(layer, "dtype", np.float64)) != np.float64:
        raise ValueError("layer: gradcheck needs a float64 layer (dtype='float64'), "
                         f"got {np.dtype(layer.dtype).name}")
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    state_t = tuple(np.array(s, dtype=np.float64) for s in _as_tuple(state))
    is_tuple_state = isinstance(state, tuple)

    def pack(st: tuple) -> Any:
        if not st:
            return None
        return st if is_tuple_state else st[0]

    prev_reuse = getattr(layer, "_reuse_masks", False)
    try:
        layer._reuse_masks = False
        out, raw_state_out = layer.forward(x, pack(state_t), lengths)
        layer._reuse_masks = True  # hold dropout masks fixed from here on
        st_out = _as_tuple(raw_state_out)
        R = rng.standard_normal(out.shape)
        S = tuple(rng.standard_normal(s.shape) for s in st_out)

        def loss(xv: np.ndarray, stv: tuple) -> float:
            o, so = layer.forward(xv, pack(stv), lengths)
            total = float(np.sum(o * R))
            for s, w in zip(_as_tuple(so), S):
                total += float(np.sum(s * w))
            return total

        layer.zero_grad()
        layer.forward(x, pack(state_t), lengths)
        dx, dstate = layer.backward(R, S if isinstance(raw_state_out, tuple) else S[0])
        analytic = {name: g.copy() for name, g in layer.grads.items()}
        analytic["x"] = dx
        for k, ds in enumerate(_as_tuple(dstate)):
            if state_t:
                analytic[f"state[{k}]"] = ds

        result = GradcheckResult()

        def check(name: str, arr: np.ndarray, evaluate) -> None:
            flat = arr.reshape(-1)
            n = flat.size
            idx = np.arange(n) if (max_checks is None or n <= max_checks) else rng.choice(n, max_checks, replace=False)
            worst_abs, worst_rel = 0.0, 0.0
            for j in idx:
                old = flat[j]
                flat[j] = old + eps
                lp = evaluate()
                flat[j] = old - eps
                lm = evaluate()
                flat[j] = old
                num = (lp - lm) / (2 * eps)
                ana = float(analytic[name].reshape(-1)[j])
                err = abs(ana - num)
                rel = err / max(abs(num), abs(ana), 1e-6)
                worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, rel)
                if err > atol + rtol * abs(num):
                    result.ok = False
                    result.failures.append((name, int(j), ana, num))
                result.checked += 1
            result.errors[name] = (worst_abs, worst_rel)

        for name, p in layer.params.items():
            check(name, p, lambda: loss(x, state_t))
        check("x", x, lambda: loss(x, state_t))
        for k, s in enumerate(state_t):
            check(f"state[{k}]", s, lambda: loss(x, state_t))
    finally:
        layer._reuse_masks = prev_reuse
    if raise_exception and not result.ok:
        lines = [f"  {n}[{j}]: analytic {a:.10g}, numeric {b:.10g}" for n, j, a, b in result.failures[:10]]
        raise AssertionError(f"gradcheck: {len(result.failures)} of {result.checked} entries differ:\n"
                             + "\n".join(lines))
    return result
