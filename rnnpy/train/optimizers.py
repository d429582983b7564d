"""The optimizers: SGD (momentum, Nesterov, weight decay), RMSprop, Adam and
AdamW, each a step rule over the Optimizer base's (params, grads) pairs.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .. import _core
from .._validate import flag, in_range
from .optimizer import Optimizer, _lerp


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

        g = grad + weight_decay * p
        buf = g (first step), else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov), else buf       (when momentum != 0)
        p = p - lr * g
    """

    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, module: Any, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0) -> None:
        super().__init__(module, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _validate(self, lr: Any, momentum: Any, dampening: Any, weight_decay: Any,
                  nesterov: Any) -> Dict[str, Any]:
        h = {"lr": in_range(lr, "lr", 0.0),
             "momentum": in_range(momentum, "momentum", 0.0, 1.0),
             "dampening": in_range(dampening, "dampening", 0.0, 1.0, hi_open=False),
             "weight_decay": in_range(weight_decay, "weight_decay", 0.0),
             "nesterov": flag(nesterov, "nesterov")}
        if h["nesterov"] and (h["momentum"] == 0 or h["dampening"] != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got momentum "
                             f"{h['momentum']:g} and dampening {h['dampening']:g}")
        return h

    def _state_names(self) -> List[str]:
        return ["momentum_buffer"] if self.momentum != 0 else []

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        # into two scratch arrays kept between steps (the same roundings)
        a, b = self._temp(0, p), self._temp(1, p)
        if self.weight_decay != 0:
            g = np.add(g, np.multiply(p, self.weight_decay, out=a), out=a)
        if self.momentum != 0:
            buf = state["momentum_buffer"]
            if self.steps == 1:
                buf[...] = g
            else:
                buf *= self.momentum
                buf += np.multiply(g, 1.0 - self.dampening, out=b)
            g = np.add(g, np.multiply(buf, self.momentum, out=b), out=b) if self.nesterov else buf
        p -= np.multiply(g, self.lr, out=a)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop.

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        avg = sqrt(v - m^2) + eps with m = alpha * m + (1 - alpha) * g (centered),
              else sqrt(v) + eps
        buf = momentum * buf + g / avg; p = p - lr * buf  (momentum > 0)
        p = p - lr * g / avg                              (otherwise)
    """

    _hyper = ("lr", "alpha", "eps", "momentum", "centered", "weight_decay")

    def __init__(self, module: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(module, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         centered=centered, weight_decay=weight_decay)

    def _validate(self, lr: Any, alpha: Any, eps: Any, momentum: Any, centered: Any,
                  weight_decay: Any) -> Dict[str, Any]:
        return {"lr": in_range(lr, "lr", 0.0),
                "alpha": in_range(alpha, "alpha", 0.0, 1.0),
                "eps": in_range(eps, "eps", 0.0, lo_open=True),
                "momentum": in_range(momentum, "momentum", 0.0, 1.0),
                "centered": flag(centered, "centered"),
                "weight_decay": in_range(weight_decay, "weight_decay", 0.0)}

    def _state_names(self) -> List[str]:
        names = ["square_avg"]
        if self.centered:
            names.append("grad_avg")
        if self.momentum > 0:
            names.append("momentum_buffer")
        return names

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        # into three scratch arrays kept between steps (the same roundings)
        a, b, c = self._temp(0, p), self._temp(1, p), self._temp(2, p)
        if self.weight_decay != 0:
            g = np.add(g, np.multiply(p, self.weight_decay, out=c), out=c)
        sq = state["square_avg"]
        sq *= self.alpha
        t = np.multiply(g, 1.0 - self.alpha, out=a)
        t *= g
        sq += t
        if self.centered:
            ga = state["grad_avg"]
            _lerp(ga, g, 1.0 - self.alpha, a)
            avg = np.subtract(sq, np.multiply(ga, ga, out=a), out=a)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(sq, out=a)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += np.divide(g, avg, out=b)
            p -= np.multiply(buf, self.lr, out=b)
        else:
            step = np.multiply(g, -self.lr, out=b)
            step /= avg
            p += step


class Adam(Optimizer):
    """Adam (optionally AMSGrad), as torch.optim.Adam; weight decay is L2 (added
    to the gradient).

        g = grad + weight_decay * p
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2
        vmax = max(vmax, v) (amsgrad, used in place of v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")
    _decoupled = False

    def __init__(self, module: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair of numbers (beta1, beta2), got {betas!r}")
        super().__init__(module, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps,
                         weight_decay=weight_decay, amsgrad=amsgrad)

    @property
    def betas(self) -> Tuple[float, float]:
        return (self.beta1, self.beta2)

    def _validate(self, lr: Any, beta1: Any, beta2: Any, eps: Any, weight_decay: Any,
                  amsgrad: Any) -> Dict[str, Any]:
        return {"lr": in_range(lr, "lr", 0.0),
                "beta1": in_range(beta1, "betas[0]", 0.0, 1.0),
                "beta2": in_range(beta2, "betas[1]", 0.0, 1.0),
                "eps": in_range(eps, "eps", 0.0, lo_open=True),
                "weight_decay": in_range(weight_decay, "weight_decay", 0.0),
                "amsgrad": flag(amsgrad, "amsgrad")}

    def _state_names(self) -> List[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _step(self) -> None:
        # a module with one flat buffer (every rnnpy model): the C kernel makes
        # the whole update in one pass, the same bits as _update below; it
        # cannot stop half way, so it needs no copies to be all or nothing
        chunks = list(self._chunks())
        if len(chunks) != 1 or type(self)._update is not Adam._update:
            return super()._step()
        p, g, _ = chunks[0]
        state = [self.state[k] for k in self._state_names()]
        if p.ndim != 1 or not all(a.flags.c_contiguous for a in [p, g] + state):
            return super()._step()
        t = float(self.steps + 1)
        _core.adam_step(p, g, state[0], state[1], state[2] if self.amsgrad else None,
                        weight_decay=self.weight_decay, decay=1.0 - self.lr * self.weight_decay,
                        beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                        step_size=self.lr / (1.0 - self.beta1 ** t),
                        bc2_sqrt=(1.0 - self.beta2 ** t) ** 0.5, decoupled=self._decoupled)
        self.steps += 1

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        # the operations of the formulas above, each into one of two scratch
        # arrays kept between steps (the same roundings as without them)
        a, b = self._temp(0, p), self._temp(1, p)
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = np.add(g, np.multiply(p, self.weight_decay, out=b), out=b)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp(m, g, 1.0 - self.beta1, a)
        v *= self.beta2
        sq = np.multiply(g, 1.0 - self.beta2, out=a)
        sq *= g
        v += sq
        t = float(self.steps)
        step_size = self.lr / (1.0 - self.beta1 ** t)
        bc2_sqrt = (1.0 - self.beta2 ** t) ** 0.5
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v, out=a)
        denom /= bc2_sqrt
        denom += self.eps
        delta = np.multiply(m, -step_size, out=b)
        delta /= denom
        p += delta


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: before the Adam
    step, p = p * (1 - lr * weight_decay)."""

    _decoupled = True

    def __init__(self, module: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(module, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
