"""The rnnpy command line: ``python -m rnnpy <command> [options]``.

Commands:
    seq-classification  the temporal-order task (RNN vs LSTM), course setup
    echo                repeat a binary series echo_step steps later
    char-rnn            a character-level language model on a text, with sampling
    bench               time rnnpy against PyTorch (see rnnpy.bench; --help for options)
    check               gradient-check every cell against finite differences and, when
                        PyTorch is installed, compare it with torch.nn in float64 and float32

Every demo takes --cell, --hidden, --layers, --epochs, --batch-size, --lr, --seed,
prints a progress bar on a terminal, and with --json prints one final line of JSON
with its metrics. With --distributed, under ``mpiexec -n N``, a demo trains
data-parallel over the N ranks and only rank 0 reports.
"""
from __future__ import annotations

import argparse
import json
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


def _report(args: argparse.Namespace, result: dict, lines: List[str]) -> int:
    if getattr(args, "distributed", False):
        from . import distributed

        if not distributed.is_main():   # one report per job, from rank 0
            return 0
        result = {**result, "ranks": distributed.world_size()}
    if args.json:
        keep = {k: v for k, v in result.items() if k not in ("model", "vocab", "history")}
        keep["history"] = result.get("history", {})
        print(json.dumps(keep))
    else:
        print("\n".join(lines))
    return 0


def _progress(args: argparse.Namespace) -> Optional[bool]:
    return False if (args.json or args.quiet) else None


def cmd_seq_classification(args: argparse.Namespace) -> int:
    from .demos import seq_classification

    r = seq_classification.run(cell=args.cell, hidden=args.hidden, layers=args.layers,
                               difficulty=args.difficulty, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               nonlinearity=args.nonlinearity, padding=args.padding,
                               progress=_progress(args), distributed=args.distributed)
    return _report(args, r, [
        f"seq-classification ({args.difficulty}, {args.cell}, hidden {args.hidden}): "
        f"test accuracy {r['test_accuracy']:.3f}, test loss {r['test_loss']:.4f} "
        f"after {args.epochs} epochs ({r['sequences_seen']} sequences)"])


def cmd_echo(args: argparse.Namespace) -> int:
    from .demos import echo_demo

    r = echo_demo.run(cell=args.cell, hidden=args.hidden, layers=args.layers,
                      echo_step=args.echo_step, series_length=args.series_length,
                      batch_size=args.batch_size, truncated_length=args.truncated_length,
                      epochs=args.epochs, lr=args.lr, seed=args.seed,
                      nonlinearity=args.nonlinearity, progress=_progress(args),
                      distributed=args.distributed)
    return _report(args, r, [
        f"echo (echo_step {args.echo_step}, {args.cell}, hidden {args.hidden}): "
        f"test accuracy {r['test_accuracy']:.4f}, test loss {r['test_loss']:.4f}"])


def cmd_char_rnn(args: argparse.Namespace) -> int:
    from .demos import char_rnn

    r = char_rnn.run(text=args.text, max_chars=args.max_chars, cell=args.cell, hidden=args.hidden,
                     layers=args.layers, embedding=args.embedding, dropout=args.dropout,
                     epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len,
                     lr=args.lr, clip=args.clip, sample_length=args.sample,
                     temperature=args.temperature, prime=args.prime, seed=args.seed,
                     progress=_progress(args), distributed=args.distributed)
    return _report(args, r, [
        f"char-rnn on {r['text']} ({r['chars']} characters): validation loss {r['val_loss']:.4f} "
        f"nats/char (unigram entropy {r['unigram_entropy']:.4f})",
        "sample:", r["sample"]])


def _common(p: argparse.ArgumentParser, cell: str, hidden: int, layers: int, epochs: int,
            batch_size: int, lr: float, seed: int = 0) -> None:
    p.add_argument("--cell", choices=["rnn", "lstm", "gru", "peephole"], default=cell)
    p.add_argument("--hidden", type=int, default=hidden, help="hidden units (default %(default)s)")
    p.add_argument("--layers", type=int, default=layers, help="recurrent layers (default %(default)s)")
    p.add_argument("--epochs", type=int, default=epochs, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=batch_size, help="default %(default)s")
    p.add_argument("--lr", type=float, default=lr, help="learning rate (default %(default)s)")
    p.add_argument("--seed", type=int, default=seed, help="default %(default)s")
    p.add_argument("--json", action="store_true", help="print one final line of JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of "
                   "an MPI job: mpiexec -n N python -m rnnpy ... --distributed "
                   '(needs pip install "rnnpy[mpi]"); rank 0 reports')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnpy", description="Recurrent networks on NumPy, in C.")
    sub = parser.add_subparsers(dest="command", metavar="command")

    p = sub.add_parser("seq-classification", help="the temporal-order task (Hochreiter & "
                       "Schmidhuber 1997, 6a)")
    _common(p, "lstm", 4, 1, 10, 32, 1e-3, seed=3)
    p.add_argument("--difficulty", default="easy",
                   choices=["easy", "normal", "moderate", "hard", "nightmare"])
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="relu",
                   help="for --cell rnn (default %(default)s, as in the course)")
    p.add_argument("--padding", choices=["pre", "post"], default="pre",
                   help="pre: zeros in front (the course); post: zeros last, read with lengths")
    p.set_defaults(func=cmd_seq_classification)

    p = sub.add_parser("echo", help="repeat a random binary series echo_step steps later")
    _common(p, "rnn", 4, 1, 5, 5, 1e-3, seed=1)
    p.add_argument("--echo-step", type=int, default=3)
    p.add_argument("--series-length", type=int, default=20000)
    p.add_argument("--truncated-length", type=int, default=20)
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="relu")
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("char-rnn", help="train a character-level model on a text and sample")
    _common(p, "lstm", 128, 2, 3, 16, 3e-3)
    p.add_argument("--text", default=None, help="a UTF-8 text file (default: a sample shipped "
                   "with rnnpy, the opening of Anna Karenina)")
    p.add_argument("--max-chars", type=int, default=60_000, help="use at most this many "
                   "characters of the text (default %(default)s; 0 = all)")
    p.add_argument("--embedding", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--sample", type=int, default=200, help="characters to sample")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--prime", default="The ")
    p.set_defaults(func=cmd_char_rnn)

    sub.add_parser("bench", help="time rnnpy against PyTorch on the same shapes (--help for options)")

    p = sub.add_parser("check", help="gradient-check every cell and compare with PyTorch")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:   # the benchmark parses its own options
        from . import bench

        return int(bench.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "distributed", False):
        from . import distributed

        try:
            distributed.init()
        except ImportError as exc:
            print(f"rnnpy {args.command}: --distributed: {exc}", file=sys.stderr)
            return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
