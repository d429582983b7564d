"""``python -m rnnpy bench``: rnnpy against PyTorch (CPU) on the same shapes.

For every cell (RNN, LSTM, GRU), shape (T, B, I, H) and thread count it times,
in one run, with the same float32 data and weights:

  forward   the layer's forward pass over T steps (both libraries keeping nothing for
            backward: rnnpy.no_grad(), PyTorch's no_grad)
  train     one training step: forward, then backward for every gradient
            (inputs, initial state, all weights; PyTorch with x.requires_grad)

Each measurement warms up, then repeats until ``--repeat`` runs or
``--min-time`` seconds per library have passed (at least three runs), and
reports the median and the spread (min and max over the runs). rnnpy and
PyTorch run in alternation, so a change in the machine's load hits both. Both libraries run
time-major data, PyTorch's native layout, so neither pays for a transpose.

Work is counted as in the literature: a training step of one layer is
6*G*T*B*H*(I+H) floating-point operations (G = 1, 4, 3 for RNN, LSTM, GRU;
2 for a multiply-add, times 3 for forward + the two backward products), the
forward pass a third of that. GFLOP/s divides that by the median time; the
fraction of peak divides by the machine's FP32 peak times the thread count.
The peak of one core is measured at the start of each run, on the machine it
runs on, as the best rate of rnnpy's own GEMM (one thread, float32) on a
1024 x 1024 x 1024 product over a second of runs: a blocked GEMM of that size keeps the FMA units
as busy as any code in rnnpy can, and it needs no separate kernel per
instruction set (it uses the micro-kernel chosen at run time). It is a lower
bound of the FMA peak (a pure FMA loop runs some 5-15% faster), so the
fractions are of what this machine's best product reaches; ``--peak`` gives
a number of your own instead. ``torch/rnnpy`` is PyTorch's median time over rnnpy's: above 1
means rnnpy is faster.

GEMM: rnnpy's own product (``rnnpy._core.gemm``) against ``numpy.matmul``
(OpenBLAS) on square products and on the per-step shapes of a recurrent
layer (B x H times H x G*H, the weight stored as PyTorch stores it, so the
product is h @ W^T). It runs in a child process because NumPy's BLAS reads its
thread count from the environment when it loads. At one thread the two run
in alternation (``--repeat`` runs, at least 20, or ``--min-time``); at more,
in blocks of calls: GEMM_ROUNDS rounds of a block of 7 runs per library (21
runs in all, whatever ``--min-time`` says), each block after a pause of 0.3 s
and 5 ms of untimed calls (one at least; a worker whose core halted in the
pause took 0.1-3 ms to wake on a VM, longer than a small product). OpenBLAS's
threads spin for about 130 ms of CPU after each call, and a product timed
right after one finds the other core taken
(rnnpy's two-thread 1024^3 product then ran at one thread's speed, 0.53x
NumPy's, against 0.97-1.24x in blocks). ``pool`` is the share of rnnpy's
parallel jobs that ran on several threads, as in the ``--step`` table: below
100%, its pool ran jobs on the caller alone after jobs lost earlier.

Options (skip with ``--no-options``): the cost of each option beyond PyTorch's
against the plain cell of the same size, both rnnpy, timed in alternation:
layer_norm, zoneout, recurrent_dropout (training mode, masks drawn every
call, as in training), peepholes and proj_size (H/2) for the LSTM; the
projected LSTM is also timed against torch.nn.LSTM(proj_size=H/2).

Peak memory (``--memory``): each measurement runs in a fresh Python process,
which builds the layer and its data, resets the kernel's resident-set
high-water mark (writing 5 to /proc/self/clear_refs), reads the resident set
(VmRSS), runs two training steps and reads the high-water mark (VmHWM); the
difference is the extra memory a training step needs beyond its model and
data (outputs, caches, gradients, workspace). ``ru_maxrss`` cannot say this:
it is a high-water mark the imports have already set, so a step that stays
below it reads as 0. Where /proc cannot reset the mark (not Linux), the row
says so and gives ``ru_maxrss`` before and after. A fresh process per number
means no library's allocator caches leak into another's figure. PyTorch's
process imports torch, rnnpy's does not.

bfloat16 (``--compute-dtype bfloat16``): instead of the float32 tables, the
layers with bfloat16 products against PyTorch's bfloat16 and rnnpy's float32,
with GFLOP/s against the machine's measured bf16 peak (rnnpy.tools.bench_bf16).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..cells import FAMILIES
from ..nn.grad_mode import no_grad
from . import bench_step
from .timing import (BLAS_SETTLE_S, settle_for, summarize, time_alternating, time_blocks,
                     time_paired)
from .bench_format import (CELL_HEADER, GEMM_HEADER, MEM_HEADER, OPTION_HEADER, _format_cell_row,
                           _format_gemm_row, _format_mem_row, _format_option_row)
from .options import (_nonnegative_float, _parse_list, _parse_shapes, _Parser, nonnegative_int,
                      positive_float, positive_int)


GATES = {name: f.gates for name, f in FAMILIES.items()}   # rnn 1, lstm 4, gru 3


# (T, B, I, H): the standard grid, the char-rnn shape, and batch-1 inference
DEFAULT_SHAPES: List[Tuple[int, int, int, int]] = [
    (100, 16, 32, 32), (100, 64, 64, 64), (100, 64, 128, 128), (50, 64, 256, 256),
    (25, 64, 512, 512), (25, 64, 1024, 1024), (150, 32, 256, 256), (100, 128, 83, 512),
    (100, 1, 128, 128), (100, 1, 512, 512),
]


SQUARE_GEMM = [256, 512, 1024, 2048]
GEMM_ROUNDS = 3  # blocks per library at more than one thread (time_blocks)


# per-step products (B, H, G*H): h (B x H) times W_hh^T (H x G*H)
STEP_GEMM = [(16, 32, 128), (32, 128, 512), (64, 64, 256), (64, 128, 512), (64, 256, 1024),
             (64, 512, 2048), (32, 512, 2048), (1, 512, 2048)]


PEAK_GEMM_N = 1024   # the square product whose best rate stands for one core's peak


def measure_peak(n: int = PEAK_GEMM_N, runs: int = 5, min_time: float = 1.0) -> float:
    """One core's FP32 GFLOP/s on this machine: the best timing of rnnpy's GEMM
    (one thread) on an n x n x n product, after one warm-up, over at least
    ``runs`` runs and ``min_time`` seconds (on a shared or virtual machine the
    core's speed moves from one moment to the next: the best over a second
    is far steadier than the best of a few runs)."""
    from .. import _core

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    w = rng.standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    _core.gemm(a, w, trans_b=True, c=c, threads=1)
    best = math.inf
    start, done = time.perf_counter(), 0
    while done < runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        _core.gemm(a, w, trans_b=True, c=c, threads=1)
        best = min(best, time.perf_counter() - t0)
        done += 1
    return 2.0 * n * n * n / best / 1e9


# the options beyond PyTorch's, per cell, as layer keyword arguments ({H} = hidden size)
OPTIONS: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {
    "lstm": [("layer_norm", {"layer_norm": True}), ("zoneout 0.1", {"zoneout": 0.1}),
             ("rec.dropout 0.25", {"recurrent_dropout": 0.25}), ("peephole", {"peephole": True}),
             ("proj_size H/2", {"proj_size": "H/2"})],
    "gru": [("layer_norm", {"layer_norm": True}), ("zoneout 0.1", {"zoneout": 0.1}),
            ("rec.dropout 0.25", {"recurrent_dropout": 0.25})],
    "rnn": [("zoneout 0.1", {"zoneout": 0.1}), ("rec.dropout 0.25", {"recurrent_dropout": 0.25})],
}


OPTION_SHAPES: List[Tuple[int, int, int, int]] = [(100, 64, 128, 128), (50, 64, 256, 256)]


def flops(cell: str, T: int, B: int, I: int, H: int, mode: str) -> float:
    """Floating-point operations of one layer: train 6*G*T*B*H*(I+H), forward a third."""
    train = 6.0 * GATES[cell] * T * B * H * (I + H)
    return train if mode == "train" else train / 3.0


# ---------------------------------------------------------------- the layers
def _rnnpy_layer(cell: str, I: int, H: int, threads: int, **options: Any):
    import rnnpy

    cls = getattr(rnnpy, FAMILIES[cell].layer)
    return cls(I, H, dtype="float32", seed=0, time_major=True, threads=threads, **options)


def _torch_layer(cell: str, I: int, H: int, layer, **options: Any):
    import torch

    cls = getattr(torch.nn, FAMILIES[cell].torch_class)
    m = cls(I, H, batch_first=False, **options)
    with torch.no_grad():  # the same weights, so both compute the same thing
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(layer.params[name])))
    return m


def _data(T: int, B: int, I: int, H: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    return x, dout


def _rnnpy_calls(layer: Any, x: np.ndarray, dout: np.ndarray) -> Dict[str, Callable[[], Any]]:
    """rnnpy's forward (keeping nothing for backward, as PyTorch's under
    no_grad) and training step of layer on x (T, B, I), dout (T, B, Hs)."""
    def forward():
        with no_grad():
            layer.forward(x)

    def train():
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dout)

    return {"forward": forward, "train": train}


def _torch_calls(m: Any, x: np.ndarray, dout: np.ndarray,
                 dtype: Any = None) -> Dict[str, Callable[[], Any]]:
    """PyTorch's forward (no_grad) and training step (x.requires_grad) of module m
    on x, dout; dtype: a torch dtype both are converted to (None: float32 as given)."""
    import torch

    tx = torch.from_numpy(x)
    tdout = torch.from_numpy(dout)
    if dtype is not None:
        tx, tdout = tx.to(dtype), tdout.to(dtype)
    txg = tx.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            m(tx)

    def train():
        m.zero_grad(set_to_none=True)
        txg.grad = None
        y, _ = m(txg)
        y.backward(tdout)

    return {"forward": forward, "train": train}


def _steps(cell: str, shape: Tuple[int, int, int, int], threads: int, use_torch: bool,
           **options: Any):
    """The four callables: rnnpy forward/train and, when asked, torch's."""
    T, B, I, H = shape
    layer = _rnnpy_layer(cell, I, H, threads, **options)
    x, dout = _data(T, B, I, layer.state_size)
    out = {"rnnpy": _rnnpy_calls(layer, x, dout)}
    if use_torch:
        out["torch"] = _torch_calls(_torch_layer(cell, I, H, layer, **options), x, dout)
    return out


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _grid(cells: Sequence[str], shapes: Sequence[Tuple[int, int, int, int]],
          threads: Sequence[int], use_torch: bool) -> Iterator[Tuple[int, str, Tuple[int, int, int, int]]]:
    """(threads, cell, shape) in the benchmark's order, setting torch's thread count."""
    for n in threads:
        if use_torch:
            _set_torch_threads(n)
        for cell in cells:
            for shape in shapes:
                yield n, cell, shape


def bench_cells(cells: Sequence[str], shapes: Sequence[Tuple[int, int, int, int]],
                threads: Sequence[int], modes: Sequence[str], use_torch: bool, peak: float,
                repeat: int, warmup: int, min_time: float, log: Callable[[str], None]) -> List[dict]:
    rows = []
    for n, cell, shape in _grid(cells, shapes, threads, use_torch):
        T, B, I, H = shape
        steps = _steps(cell, shape, n, use_torch)
        for mode in modes:
            row: Dict[str, Any] = {"cell": cell, "T": T, "B": B, "I": I, "H": H,
                                   "threads": n, "mode": mode}
            fl = flops(cell, T, B, I, H, mode)
            timed = time_paired({lib: fns[mode] for lib, fns in steps.items()}, repeat,
                                warmup, min_time, settle_for(n, use_torch))
            for lib, t in timed.items():
                row[lib] = {**t, "gflops": fl / t["median"] / 1e9,
                            "peak_frac": fl / t["median"] / 1e9 / (peak * n)}
            if "torch" in row:
                row["ratio"] = row["torch"]["median"] / row["rnnpy"]["median"]
            rows.append(row)
            log(_format_cell_row(row))
    return rows


def bench_options(cells: Sequence[str], shapes: Sequence[Tuple[int, int, int, int]],
                  threads: Sequence[int], modes: Sequence[str], use_torch: bool, repeat: int,
                  warmup: int, min_time: float, log: Callable[[str], None]) -> List[dict]:
    """Each option against the plain cell (both rnnpy, alternated); the
    projected LSTM also against torch's."""
    rows = []
    for n, cell, shape in _grid(cells, shapes, threads, use_torch):
        T, B, I, H = shape
        plain = _steps(cell, shape, n, False)["rnnpy"]
        for label, opts in OPTIONS[cell]:
            opts = {k: (H // 2 if v == "H/2" else v) for k, v in opts.items()}
            if opts.get("proj_size", 1) < 1:
                continue
            with_torch = use_torch and "proj_size" in opts
            steps = _steps(cell, shape, n, with_torch, **opts)
            for mode in modes:
                fns = {"plain": plain[mode], "rnnpy": steps["rnnpy"][mode]}
                if with_torch:
                    fns["torch"] = steps["torch"][mode]
                timed = time_paired(fns, repeat, warmup, min_time, settle_for(n, with_torch))
                row: Dict[str, Any] = {"cell": cell, "option": label, "T": T, "B": B,
                                       "I": I, "H": H, "threads": n, "mode": mode, **timed,
                                       "cost": timed["rnnpy"]["median"] / timed["plain"]["median"]}
                if with_torch:
                    row["ratio"] = timed["torch"]["median"] / timed["rnnpy"]["median"]
                rows.append(row)
                log(_format_option_row(row))
    return rows


# ------------------------------------------------------------------- gemm
def _gemm_worker(threads: int, repeat: int, min_time: float) -> List[dict]:
    """Runs in a child process whose BLAS thread count was set before numpy loaded."""
    from .. import _core

    rng = np.random.default_rng(0)
    rows = []
    cases = [("square", n, n, n) for n in SQUARE_GEMM] + [("step", b, g, h) for b, h, g in STEP_GEMM]
    for kind, M, N, K in cases:
        a = rng.standard_normal((M, K)).astype(np.float32)
        w = rng.standard_normal((N, K)).astype(np.float32)  # op(B) = w^T, K x N
        c = np.empty((M, N), np.float32)
        wt = w.T
        fns = {"numpy": lambda: np.matmul(a, wt, out=c),
               "rnnpy": lambda: _core.gemm(a, w, trans_b=True, c=c, threads=threads)}
        if threads > 1:  # OpenBLAS's threads spin long after a call: blocks, each after a pause
            runs = -(-max(repeat, 20) // GEMM_ROUNDS)
            res = time_blocks(fns, GEMM_ROUNDS, runs, BLAS_SETTLE_S)
        else:
            res = time_alternating(fns, max(repeat, 20), 3, min_time)
        timed = {k: summarize(v) for k, v in res["wall"].items()}
        t_np, t_r = timed["numpy"], timed["rnnpy"]
        threaded, alone = res["pool"]["rnnpy"]
        fl = 2.0 * M * N * K
        rows.append({"kind": kind, "M": M, "N": N, "K": K, "threads": threads,
                     "numpy": {**t_np, "gflops": fl / t_np["median"] / 1e9},
                     "rnnpy": {**t_r, "gflops": fl / t_r["median"] / 1e9,
                               "pool_threaded": threaded, "pool_alone": alone},
                     "ratio": t_np["median"] / t_r["median"]})
    return rows


def bench_gemm(threads: Sequence[int], repeat: int, min_time: float, log: Callable[[str], None]) -> List[dict]:
    rows = []
    for n in threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n),
                   MKL_NUM_THREADS=str(n))
        cmd = [sys.executable, "-m", "rnnpy.tools.bench", "--_gemm-worker", str(n),
               "--repeat", str(repeat), "--min-time", str(min_time)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError("gemm benchmark failed:\n" + res.stderr[-2000:])
        for row in json.loads(res.stdout.strip().splitlines()[-1]):
            rows.append(row)
            log(_format_gemm_row(row))
    return rows


# ----------------------------------------------------------------- memory
_MEM_SCRIPT = r"""
import json, resource, sys

import numpy as np
from rnnpy.cells import FAMILIES
lib, cell, T, B, I, H, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I)).astype(np.float32)
dout = rng.standard_normal((T, B, H)).astype(np.float32)
if lib == "torch":
    import torch
    torch.set_num_threads(threads)
    m = getattr(torch.nn, FAMILIES[cell].torch_class)(I, H)
    tx = torch.from_numpy(x).requires_grad_(True)
    td = torch.from_numpy(dout)
    def step():
        m.zero_grad(set_to_none=True); tx.grad = None
        y, _ = m(tx); y.backward(td)
else:
    import rnnpy
    m = getattr(rnnpy, FAMILIES[cell].layer)(
        I, H, dtype="float32", seed=0, time_major=True, threads=threads)
    def step():
        m.zero_grad(); m.forward(x); m.backward(dout)
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)
try:
    with open("/proc/self/clear_refs", "w") as f:   # resets VmHWM to VmRSS
        f.write("5")
    before = status_kib("VmRSS")
    method = "VmHWM"
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method = "ru_maxrss"
step(); step()
after = status_kib("VmHWM") if method == "VmHWM" else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "peak_kib": after, "step_kib": after - before,
                  "method": method}))
"""


def bench_memory(cells: Sequence[str], shapes: Sequence[Tuple[int, int, int, int]], threads: int,
                 use_torch: bool, log: Callable[[str], None]) -> List[dict]:
    rows = []
    libs = ["rnnpy"] + (["torch"] if use_torch else [])
    for cell in cells:
        for T, B, I, H in shapes:
            row: Dict[str, Any] = {"cell": cell, "T": T, "B": B, "I": I, "H": H, "threads": threads}
            for lib in libs:
                res = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, lib, cell, str(T), str(B),
                                      str(I), str(H), str(threads)], capture_output=True, text=True)
                if res.returncode != 0:
                    raise RuntimeError(f"memory benchmark ({lib}) failed:\n" + res.stderr[-2000:])
                row[lib] = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            log(_format_mem_row(row))
    return rows


def build_parser() -> argparse.ArgumentParser:

    p = _Parser(prog="python -m rnnpy bench", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=lambda s: _parse_list(s, list(GATES)), default=list(GATES),
                   help=f"comma-separated cells among {', '.join(GATES)} (default all)")
    p.add_argument("--shapes", type=_parse_shapes, default=None,
                   help="'T,B,I,H;T,B,I,H;...' (default: the grid in the module docstring)")
    p.add_argument("--threads", type=lambda s: [positive_int(v) for v in _parse_list(s)], default=[1, 2],
                   help="comma-separated thread counts, each run for both libraries (default 1,2)")
    p.add_argument("--modes", type=lambda s: _parse_list(s, ["forward", "train"]),
                   default=["forward", "train"], help="forward, train or both (default both)")
    p.add_argument("--repeat", type=positive_int, default=10, help="timed runs per measurement (at most)")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="untimed runs first")
    p.add_argument("--min-time", type=_nonnegative_float, default=1.0,
                   help="stop repeating after this many seconds (at least 3 runs)")
    p.add_argument("--peak", type=positive_float, default=None,
                   help="FP32 peak GFLOP/s of one core (default: measured at the start, as the "
                        f"best rate of rnnpy's GEMM on a {PEAK_GEMM_N}^3 product, one thread)")
    p.add_argument("--no-torch", action="store_true", help="time rnnpy alone")
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM comparison")
    p.add_argument("--no-options", action="store_true",
                   help="skip the cost of the options beyond PyTorch's (layer norm, zoneout, ...)")
    p.add_argument("--memory", action="store_true",
                   help="also measure peak memory of a training step (fresh process each)")
    p.add_argument("--json", action="store_true", help="print one line of JSON with every result")
    p.add_argument("--compute-dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: the layers with bfloat16 products against PyTorch's bfloat16 "
                        "and rnnpy's float32, against the measured bf16 peak, instead of the "
                        "float32 tables (see rnnpy.tools.bench_bf16; needs AMX-BF16 or "
                        "AVX512-BF16) (default %(default)s)")
    p.add_argument("--step", action="store_true",
                   help="time the whole char-rnn training step instead (rnnpy.tools.bench_step; "
                        "not in the default run, which it would lengthen by a minute)")
    p.add_argument("--step-shape", type=bench_step.parse_step_shape, default=bench_step.STEP_SHAPE,
                   help="'V,E,H,B,T' of the step (default %s)" % ",".join(map(str, bench_step.STEP_SHAPE)))
    p.add_argument("--step-batches", type=positive_int, default=5, help="batches per timed fit")
    p.add_argument("--_gemm-worker", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args._gemm_worker is not None:
        print(json.dumps(_gemm_worker(args._gemm_worker, args.repeat, args.min_time)))
        return 0
    from .. import _core

    shapes = args.shapes or DEFAULT_SHAPES
    use_torch = not args.no_torch and _torch_available()
    quiet = args.json

    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    if args.compute_dtype == "bfloat16":
        return _main_bf16(args, use_torch, log)
    peak_source = "given (--peak)"
    if args.peak is None:
        args.peak = measure_peak()
        peak_source = f"measured: rnnpy GEMM {PEAK_GEMM_N}^3, one thread"
    info = {"isa": _core.gemm_isa(), "peak_gflops_per_core": args.peak, "peak_source": peak_source,
            "cpu_count": os.cpu_count(), "torch": None}
    if use_torch:
        import torch

        info["torch"] = torch.__version__
    log(f"rnnpy bench: float32, GEMM kernel {info['isa']}, peak {args.peak:.0f} GFLOP/s per core "
        f"({peak_source}), "
        f"PyTorch {info['torch'] or 'not installed'}")
    log("times are medians; sprd = (max-min)/median; torch/rnnpy > 1 means rnnpy is faster")
    log("")
    result: Dict[str, Any] = {"info": info}
    if args.step:
        log(bench_step.step_title(args.threads, args.step_batches, args.step_shape))
        log(bench_step.STEP_HEADER)
        result["step"] = bench_step.bench_step(args.threads, use_torch, args.repeat, args.warmup,
                                               args.min_time, log, args.step_shape, args.step_batches)
        if args.json:
            print(json.dumps(result))
        return 0
    log(CELL_HEADER)
    result["cells"] = bench_cells(args.cells, shapes, args.threads, args.modes, use_torch, args.peak,
                                  args.repeat, args.warmup, args.min_time, log)
    if not args.no_options:
        log("")
        log("options against the plain cell (cost = option time / plain time; training mode)")
        log(OPTION_HEADER)
        result["options"] = bench_options(args.cells, args.shapes or OPTION_SHAPES, args.threads,
                                          args.modes, use_torch, args.repeat, args.warmup,
                                          args.min_time, log)
    if not args.no_gemm:
        log("")
        log(GEMM_HEADER)
        result["gemm"] = bench_gemm(args.threads, args.repeat, min(args.min_time, 0.5), log)
    if args.memory:
        log("")
        log("peak memory of a training step beyond model and data (VmHWM after a reset, "
            "fresh process each)")
        log(MEM_HEADER)
        result["memory"] = bench_memory(args.cells, shapes, args.threads[0], use_torch, log)
    if args.json:
        print(json.dumps(result))
    return 0


def _main_bf16(args: argparse.Namespace, use_torch: bool, log: Callable[[str], None]) -> int:
    from . import bench_bf16

    try:
        bf16 = bench_bf16.run(sys.modules[__name__], args, use_torch, log)
    except ValueError as exc:   # no AMX-BF16 or AVX512-BF16
        print(f"rnnpy bench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        info: Dict[str, Any] = {"cpu_count": os.cpu_count(), "torch": None}
        if use_torch:
            import torch

            info["torch"] = torch.__version__
        print(json.dumps({"info": info, "bf16": bf16}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
