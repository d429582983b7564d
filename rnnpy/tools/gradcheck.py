"""Finite-difference gradient checking for any rnnpy module.

``gradcheck`` compares a module's analytic gradients (from ``backward``) with
central differences of a random linear loss

    L = sum(out * R) + sum over the final state's arrays s_k of sum(s_k * S_k)

with respect to every parameter (or a random sample of each), the input
(unless it holds integer tokens) and the initial state. It needs float64 and
a deterministic forward: dropout masks are held fixed while it runs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np

from ..nn.locking import holds_model_lock


@dataclass
class GradcheckResult:
    """What gradcheck measured.

    errors: name -> (largest absolute error, largest relative error), where the
        relative error is |analytic - numeric| / max(|analytic|, |numeric|, 1e-6).
    checked: how many entries were compared. ok: whether all were within
        tolerance. failures: (name, flat index, analytic, numeric) of the others.
    """

    errors: dict = field(default_factory=dict)
    checked: int = 0
    ok: bool = True
    failures: list = field(default_factory=list)

    def max_rel_error(self) -> float:
        return max((e[1] for e in self.errors.values()), default=0.0)

    def max_abs_error(self) -> float:
        return max((e[0] for e in self.errors.values()), default=0.0)


def _leaves(obj: Any) -> List[np.ndarray]:
    """The arrays of a nested state (array, tuple or list of them, None)."""
    if obj is None:
        return []
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _leaves(o)]
    return [obj]


def _rebuild(template: Any, leaves: Iterator[Any]) -> Any:
    """A structure like template with its arrays taken from leaves, in order."""
    if template is None:
        return None
    if isinstance(template, (tuple, list)):
        return type(template)(_rebuild(t, leaves) for t in template)
    return next(leaves)


def _masks_held(module: Any) -> Any:
    """module.masks_held() (random masks fixed), or nothing for a module without masks."""
    held = getattr(module, "masks_held", None)
    return held() if callable(held) else contextlib.nullcontext()


def _run(module: Any, x: Any, state: Any, lengths: Any) -> Tuple[np.ndarray, Any]:
    if getattr(module, "is_recurrent", True):
        return module.forward(x, state, lengths)
    if getattr(module, "accepts_lengths", False):
        return module.forward(x, lengths), None
    return module.forward(x), None


@holds_model_lock
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
    """Checks layer.backward against central differences of layer.forward.

    layer: an rnnpy module (a recurrent layer, Dense, Sequential, ...) in float64.
    x, state, lengths: the arguments of forward (state and lengths only for
        modules that take them).
    eps: the finite-difference step; atol, rtol: |analytic - numeric| must be
        <= atol + rtol * |numeric| for every checked entry.
    max_checks: at most this many entries are sampled per array (None = all).
    Returns a GradcheckResult; raises AssertionError on a mismatch when
    raise_exception is true. The layer's gradients are as they were before the
    call; its cache is that of a perturbed forward, so run forward again before
    the next backward.
    """
    from .. import _validate as _checks

    if not all(hasattr(layer, a) for a in ("forward", "backward", "params", "grads")):
        raise TypeError(f"layer: expected an rnnpy module (forward, backward, params, grads), "
                        f"got {type(layer).__name__}")
    _checks.number(eps, "eps", 0.0, positive=True)
    _checks.number(atol, "atol", 0.0)
    _checks.number(rtol, "rtol", 0.0)
    _checks.integer(max_checks, "max_checks", 1, none=True)
    _checks.integer(seed, "seed", 0)
    _checks.flag(raise_exception, "raise_exception")
    if np.dtype(getattr(layer, "dtype", np.float64)) != np.float64:
        raise ValueError("layer: gradcheck needs a float64 module (dtype='float64'), "
                         f"got {np.dtype(layer.dtype).name}")
    rng = np.random.default_rng(seed)
    # C order, so that reshape(-1) in _check_entries is a view that perturbs x itself
    x = np.array(_checks.array(x, "x"), order="C")
    if x.dtype.kind not in "iuf":   # casting complex or object data would check garbage
        raise TypeError(f"x: expected real numbers (or integer tokens), got dtype {x.dtype}")
    if x.dtype.kind == "f":
        x = x.astype(np.float64)
    state_leaves = [np.array(s, dtype=np.float64, order="C") for s in _leaves(state)]
    recurrent = getattr(layer, "is_recurrent", True)

    def current_state() -> Any:
        return _rebuild(state, iter(state_leaves))

    caller_grads = {name: g.copy() for name, g in layer.grads.items()}   # put back at the end
    result = GradcheckResult()
    hold = contextlib.ExitStack()
    try:
        out, state_out = _run(layer, x, current_state(), lengths)   # draws the masks
        hold.enter_context(_masks_held(layer))   # and holds them fixed from here on
        R = rng.standard_normal(out.shape)
        S = [rng.standard_normal(s.shape) for s in _leaves(state_out)]

        def loss() -> float:
            o, so = _run(layer, x, current_state(), lengths)
            total = float(np.sum(o * R))
            for s, w in zip(_leaves(so), S):
                total += float(np.sum(s * w))
            return total

        layer.zero_grad()
        _run(layer, x, current_state(), lengths)
        if recurrent:
            dx, dstate = layer.backward(R, _rebuild(state_out, iter(S)))
        else:
            dx, dstate = layer.backward(R), None
        analytic = {name: g.copy() for name, g in layer.grads.items()}
        targets: List[Tuple[str, np.ndarray]] = list(layer.params.items())
        if x.dtype.kind == "f":
            analytic["x"] = np.asarray(dx)
            targets.append(("x", x))
        for k, ds in enumerate(_leaves(dstate) if state_leaves else []):
            analytic[f"state[{k}]"] = ds
            targets.append((f"state[{k}]", state_leaves[k]))

        for name, arr in targets:
            _check_entries(name, arr, analytic[name], loss, eps, atol, rtol, max_checks, rng, result)
    finally:
        hold.close()
        for name, g in caller_grads.items():
            layer.grads[name][...] = g
    if raise_exception and not result.ok:
        lines = [f"  {n}[{j}]: analytic {a:.10g}, numeric {b:.10g}" for n, j, a, b in result.failures[:10]]
        raise AssertionError(f"gradcheck: {len(result.failures)} of {result.checked} entries differ:\n"
                             + "\n".join(lines))
    return result


def _check_entries(name: str, arr: np.ndarray, analytic: np.ndarray, loss: Callable[[], float],
                   eps: float, atol: float, rtol: float, max_checks: Optional[int],
                   rng: np.random.Generator, result: GradcheckResult) -> None:
    """Central differences of loss in sampled entries of arr (changed in place
    and restored), compared with the analytic gradient."""
    flat = arr.reshape(-1)
    n = flat.size
    if max_checks is None or n <= max_checks:
        idx = np.arange(n)
    else:
        idx = rng.choice(n, max_checks, replace=False)
    worst_abs, worst_rel = 0.0, 0.0
    for j in idx:
        old = flat[j]
        try:
            flat[j] = old + eps
            lp = loss()
            flat[j] = old - eps
            lm = loss()
        finally:   # an interrupted check leaves the entry as it was
            flat[j] = old
        num = (lp - lm) / (2 * eps)
        ana = float(analytic.reshape(-1)[j])
        err = abs(ana - num)
        worst_abs = max(worst_abs, err)
        worst_rel = max(worst_rel, err / max(abs(num), abs(ana), 1e-6))
        if err > atol + rtol * abs(num):
            result.ok = False
            result.failures.append((name, int(j), ana, num))
        result.checked += 1
    result.errors[name] = (worst_abs, worst_rel)
