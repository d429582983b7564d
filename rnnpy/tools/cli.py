"""The rnnpy command line: ``python -m rnnpy <command> [options]``.

Commands:
    seq-classification  the temporal-order task at a difficulty level, trained until solved
                        with the level's preset (easy: the course's setup)
    echo                repeat a binary series echo_step steps later
    char-rnn            a character-level language model on a text, with sampling
    bench               time rnnpy against PyTorch (see rnnpy.tools.bench; --help for options)
    check               gradient-check every cell against finite differences and, when
                        PyTorch is installed, compare it with torch.nn in float64 and float32

Every demo takes --cell, --hidden, --layers, --epochs, --batch-size, --lr, --seed,
--compute-dtype (float32, bfloat16 or auto: the precision of the recurrent layers'
products, see rnnpy.LSTM), prints a progress bar on a terminal, and with --json
prints one final line of JSON with its metrics. With --distributed, under
``mpiexec -n N``, a demo trains data-parallel over the N ranks and only rank 0 reports.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import _core
from ..cells import DEMO_CELLS, kinds
from ..nn.recurrent import recurrent_layer
from .gradcheck import gradcheck
from .options import (_Parser, fraction, nonnegative_int, positive_float, positive_int, probability,
                      text_file)


# `check`'s cells by their command-line names (rnnpy.cells)
CELLS: Dict[str, Callable] = {k.cli_name: functools.partial(recurrent_layer, k) for k in kinds()}
_KINDS = {k.cli_name: k for k in kinds()}


def _torch_error(name: str, dtype: str, seed: int) -> Optional[float]:
    """Largest relative difference from torch.nn over outputs and gradients, or
    None when PyTorch is not installed or has no such cell."""
    try:
        import torch
    except ImportError:
        return None
    kind = _KINDS[name]
    if kind.torch_class is None:
        return None
    rng = np.random.default_rng(seed)
    kw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, dtype=dtype, seed=seed)
    layer = CELLS[name](**kw)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    tkw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True, dtype=tdt)
    ref = getattr(torch.nn, kind.torch_class)(**kind.torch_options, **tkw)
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


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_check(args: argparse.Namespace) -> int:
    _apply_threads(args)
    print(f"rnnpy check: GEMM micro-kernel {_core.gemm_isa()}")
    if not _torch_available():
        print("PyTorch is not installed: the torch columns are skipped (n/a); "
              "pip install torch to compare every cell with torch.nn")
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
        from ..train import distributed

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
    _apply_threads(args)
    return False if (args.json or args.quiet) else None


def _apply_threads(args: argparse.Namespace) -> None:
    """--threads: the thread count of every layer the command builds (through
    RNNPY_NUM_THREADS, which the layers read when not told)."""
    if getattr(args, "threads", None) is not None:
        os.environ["RNNPY_NUM_THREADS"] = str(args.threads)


def cmd_seq_classification(args: argparse.Namespace) -> int:
    from ..demos import seq_classification

    r = seq_classification.solve(args.difficulty, cell=args.cell, hidden=args.hidden,
                                 lr=args.lr, batch_size=args.batch_size, init=args.init,
                                 epochs=args.epochs, layers=args.layers, seed=args.seed,
                                 nonlinearity=args.nonlinearity, padding=args.padding,
                                 threads=args.threads, progress=_progress(args),
                                 distributed=args.distributed, compute_dtype=args.compute_dtype)
    status = (f"solved after {r['sequences_seen']} sequences" if r["solved"]
              else f"not solved after {r['sequences_seen']} sequences")
    return _report(args, r, [
        f"seq-classification ({args.difficulty}, {r['cell']}, hidden {r['hidden']}, "
        f"{r['compute_dtype']} products, "
        f"{r['optimizer']} lr {r['lr']:g}, batch {r['batch_size']}, init {r['init']}): "
        f"{status}, test accuracy {r['test_accuracy']:.3f} on fresh sequences"])


def cmd_echo(args: argparse.Namespace) -> int:
    from ..demos import echo_demo

    r = echo_demo.run(cell=args.cell, hidden=args.hidden, layers=args.layers,
                      echo_step=args.echo_step, series_length=args.series_length,
                      batch_size=args.batch_size, truncated_length=args.truncated_length,
                      epochs=args.epochs, lr=args.lr, seed=args.seed,
                      nonlinearity=args.nonlinearity, progress=_progress(args),
                      distributed=args.distributed, compute_dtype=args.compute_dtype)
    return _report(args, r, [
        f"echo (echo_step {args.echo_step}, {args.cell}, hidden {args.hidden}, "
        f"{r['compute_dtype']} products): "
        f"test accuracy {r['test_accuracy']:.4f}, test loss {r['test_loss']:.4f}"])


def cmd_char_rnn(args: argparse.Namespace) -> int:
    from ..demos import char_rnn

    r = char_rnn.run(text=args.text, max_chars=args.max_chars, cell=args.cell, hidden=args.hidden,
                     layers=args.layers, embedding=args.embedding, dropout=args.dropout,
                     epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len,
                     lr=args.lr, clip=args.clip, sample_length=args.sample,
                     temperature=args.temperature, prime=args.prime, seed=args.seed,
                     progress=_progress(args), minutes=args.minutes,
                     checkpoint=args.checkpoint, resume=args.resume,
                     distributed=args.distributed, schedule=args.schedule,
                     final_lr=args.final_lr, compute_dtype=args.compute_dtype)
    budget = ([f"trained {r['train_seconds'] / 60:.1f} minutes in all, {r['epochs_done']:.2f} "
               f"epochs; checkpoint {r['checkpoint']}"] if args.minutes is not None else [])
    return _report(args, r, [
        f"char-rnn on {r['text']} ({r['chars']} characters, {r['compute_dtype']} products): "
        f"validation loss {r['val_loss']:.4f} "
        f"nats/char (unigram entropy {r['unigram_entropy']:.4f})", *budget,
        "sample:", r["sample"]])


def _char_rnn() -> Any:
    """The char-rnn demo module, whose defaults and schedules the parser shows."""
    from ..demos import char_rnn

    return char_rnn


def _both(name: str) -> str:
    """The two defaults of a char-rnn option, for its help."""
    demo = _char_rnn()
    return f" (default {demo.EPOCH_DEFAULTS[name]}; {demo.BUDGET_DEFAULTS[name]} with --minutes)"


def _defaults_decided_later(p: argparse.ArgumentParser, helps: Dict[str, str],
                            default_text: Callable[[str], str]) -> None:
    """The options named in helps default to None (the command decides their
    values: a preset, or the mode's defaults); their help says how."""
    for action in p._actions:
        if action.dest in helps:
            action.default = None
            action.help = helps[action.dest] + default_text(action.dest)


def _numbers(p: argparse.ArgumentParser, *rows: Tuple[str, Callable[[str], Any], Any, str]) -> None:
    """Numeric options from (flag, parser, default, what) rows; each help
    ends with its default."""
    for flag, kind, default, what in rows:
        p.add_argument(flag, type=kind, default=default, help=f"{what} (default %(default)s)")


def _common(p: argparse.ArgumentParser, cell: str, hidden: int, layers: int, epochs: int,
            batch_size: int, lr: float, seed: int = 0) -> None:
    p.add_argument("--cell", choices=list(DEMO_CELLS), default=cell,
                   help="recurrent cell (default %(default)s)")
    _numbers(p, ("--hidden", positive_int, hidden, "hidden units"),
             ("--layers", positive_int, layers, "recurrent layers"),
             ("--epochs", nonnegative_int, epochs, "passes over the training data"),
             ("--batch-size", positive_int, batch_size, "sequences per batch"),
             ("--lr", positive_float, lr, "learning rate"),
             ("--seed", nonnegative_int, seed, "seed of the weights and the data"))
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads per layer (default: $RNNPY_NUM_THREADS, else 1)")
    _compute_dtype_option(p)
    p.add_argument("--json", action="store_true", help="print one final line of JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of "
                   "an MPI job: mpiexec -n N python -m rnnpy ... --distributed "
                   '(needs pip install "rnnpy[mpi]"); rank 0 reports')


def _compute_dtype_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compute-dtype", choices=["float32", "bfloat16", "auto"], default=None,
                   help="precision of the recurrent layers' matrix products: bfloat16 operands "
                   "with float32 accumulation need AMX-BF16 or AVX512-BF16; auto uses them where "
                   "the CPU has them (default float32)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnpy", description="Recurrent networks on NumPy, in C.")
    sub = parser.add_subparsers(dest="command", metavar="command")

    p = sub.add_parser("seq-classification", help="the temporal-order task (Hochreiter & "
                       "Schmidhuber 1997, 6a)")
    _common(p, "lstm", 4, 1, 10, 32, 1e-3, seed=3)
    # cell, width, learning rate, batch size, initialisation and the epoch cap come
    # from the level's preset (seq_classification.PRESETS) unless given
    _defaults_decided_later(p, {
        "cell": "cell", "hidden": "hidden units", "lr": "learning rate",
        "batch_size": "sequences per batch",
        "epochs": "stop unsolved after this many epochs of ~1000 sequences"},
        lambda dest: " (default: the level's preset)")
    p.add_argument("--difficulty", default="easy",
                   choices=["easy", "normal", "moderate", "hard", "nightmare"],
                   help="level; its preset gives every setting not given (default %(default)s)")
    p.add_argument("--init", default=None, choices=["uniform", "chrono", "forget-bias",
                                                    "orthogonal", "chrono-orthogonal"],
                   help="initialisation of the recurrent layer (default: the level's preset)")
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="relu",
                   help="for --cell rnn (default %(default)s, as in the course)")
    p.add_argument("--padding", choices=["pre", "post"], default="pre",
                   help="pre: zeros in front (the course); post: zeros last, read with lengths")
    p.set_defaults(func=cmd_seq_classification)

    p = sub.add_parser("echo", help="repeat a random binary series echo_step steps later")
    _common(p, "rnn", 4, 1, 5, 5, 1e-3, seed=1)
    _numbers(p, ("--echo-step", positive_int, 3, "steps between an input and its echo"),
             ("--series-length", positive_int, 20000, "length of each batch row's series"),
             ("--truncated-length", positive_int, 20, "steps per chunk of truncated BPTT"))
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="relu",
                   help="for --cell rnn (default %(default)s)")
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("char-rnn", help="train a character-level model on a text and sample")
    _common(p, "lstm", 128, 2, 3, 16, 3e-3)
    _defaults_decided_later(p, {"hidden": "hidden units", "layers": "recurrent layers",
                                "batch_size": "sequences per batch", "lr": "peak learning rate"},
                            _both)
    p.add_argument("--text", type=text_file, default=None, help="a UTF-8 text file (default: a "
                   "sample shipped with rnnpy, the opening of Anna Karenina)")
    p.add_argument("--max-chars", type=nonnegative_int, default=None, help="use at most this many "
                   "characters of the text (default: all of a --text, 60,000 of the shipped "
                   "sample; 0 = all)")
    p.add_argument("--minutes", type=positive_float, default=None, help="train for this many "
                   "minutes of wall-clock time instead of --epochs, keeping a checkpoint")
    p.add_argument("--checkpoint", default=None, help="checkpoint file of a --minutes run "
                   "(default char-rnn.rnnpy in the current directory)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint for "
                   "another --minutes (the model's size comes from the checkpoint)")
    p.add_argument("--embedding", type=positive_int, default=None,
                   help="size of the character embedding" + _both("embedding"))
    p.add_argument("--dropout", type=probability, default=None,
                   help="dropout on the recurrent layers' outputs (between them and before the "
                   "output layer), in [0, 1)" + _both("dropout"))
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="steps per training window" + _both("seq_len"))
    p.add_argument("--schedule", choices=list(_char_rnn().SCHEDULES), default="cosine",
                   help="learning rate over a --minutes budget: warm-up then cosine decay to "
                   "--final-lr times --lr at the deadline, or constant (default %(default)s)")
    p.add_argument("--final-lr", type=fraction, default=0.05,
                   help="with --schedule cosine, the learning rate at the deadline as a fraction "
                   "of --lr (default %(default)s)")
    _numbers(p, ("--clip", positive_float, 5.0, "global gradient-norm clip"),
             ("--sample", nonnegative_int, 200, "characters to sample after training"),
             ("--temperature", positive_float, 0.8,
              "sampling temperature: lower is more conservative"))
    p.add_argument("--prime", default="The ", help="text the sample starts from (default %(default)r)")
    p.set_defaults(func=cmd_char_rnn)

    sub.add_parser("bench", help="time rnnpy against PyTorch on the same shapes (--help for options)")

    p = sub.add_parser("check", help="gradient-check every cell and compare with PyTorch")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the weights and inputs (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads per layer (default: $RNNPY_NUM_THREADS, else 1)")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:   # the benchmark parses its own options
        from . import bench

        try:
            return int(bench.main(argv[1:]))
        except BrokenPipeError:
            return _closed_pipe()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "distributed", False):
        from ..train import distributed

        try:
            distributed.init()
        except ImportError as exc:
            print(f"rnnpy {args.command}: --distributed: {exc}", file=sys.stderr)
            return 2
    try:
        return int(args.func(args))
    except ValueError as exc:   # a combination of values the command refused, named in exc
        print(f"rnnpy {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """Output piped into a reader that stopped (| head): end without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())   # Python's own flush at exit would raise again
    return 1


if __name__ == "__main__":
    sys.exit(main())
