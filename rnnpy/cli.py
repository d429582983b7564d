"""The rnnpy command line: ``python -m rnnpy <command> [options]``.

Commands:
    check   gradient-check every cell against finite differences and, when
            PyTorch is installed, compare it with torch.nn in float64 and float32
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional

import numpy as np

from . import _core
from .gradcheck import gradcheck
from .layers import GRU, LSTM, RNN

CELLS: Dict[str, Callable] = {
    "rnn-tanh": lambda **kw: RNN(nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: RNN(nonlinearity="relu", **kw),
    "lstm": lambda **kw: LSTM(**kw),
    "lstm-peephole": lambda **kw: LSTM(peephole=True, **kw),
    "gru": lambda **kw: GRU(**kw),
}


def _torch_error(name: str, dtype: str, seed: int) -> Optional[float]:
    """Largest relative difference from torch.nn over outputs and gradients, or
    None when PyTorch is not installed or has no such cell."""
    try:
        import torch
    except ImportError:
        return None
    if name == "lstm-peephole":
        return None
    rng = np.random.default_rng(seed)
    kw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, dtype=dtype, seed=seed)
    layer = CELLS[name](**kw)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    tkw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True, dtype=tdt)
    if name.startswith("rnn"):
        ref = torch.nn.RNN(nonlinearity=name.split("-")[1], **tkw)
    else:
        ref = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name](**tkw)
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    x = rng.standard_normal((4, 6, 3)).astype(dtype)
    out, state = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    layer.zero_grad()
    dx, _ = layer.backward(dout)
    xt = torch.from_numpy(x).requires_grad_()
    tout, _ = ref(xt)
    (tout * torch.from_numpy(dout)).sum().backward()
    pairs = [(out, tout.detach().numpy()), (dx, xt.grad.numpy())]
    pairs += [(layer.grads[k], p.grad.numpy()) for k, p in ref.named_parameters()]
    return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in pairs)


def cmd_check(args: argparse.Namespace) -> int:
    print(f"rnnpy check: GEMM micro-kernel {_core.gemm_isa()}")
    print(f"{'cell':<15}{'gradcheck rel err':>20}{'torch f64':>12}{'torch f32':>12}")
    failed = False
    for name, make in CELLS.items():
        layer = make(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                     dtype="float64", seed=args.seed)
        x = np.random.default_rng(args.seed).standard_normal((2, 5, 3))
        res = gradcheck(layer, x, lengths=[5, 3], max_checks=40, raise_exception=False)
        failed |= not res.ok
        t64, t32 = _torch_error(name, "float64", args.seed), _torch_error(name, "float32", args.seed)
        fmt = lambda e: "n/a" if e is None else f"{e:.1e}"  # noqa: E731
        failed |= (t64 is not None and t64 > 1e-10) or (t32 is not None and t32 > 1e-5)
        print(f"{name:<15}{res.max_rel_error():>20.1e}{fmt(t64):>12}{fmt(t32):>12}"
              + ("" if res.ok else "   FAILED"))
    print("all checks passed" if not failed else "some checks FAILED")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnpy", description="Recurrent networks on NumPy, in C.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    p = sub.add_parser("check", help="gradient-check every cell and compare with PyTorch")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
