"""``python -m rnnpy bench --compute-dtype bfloat16``: the recurrent layers with
bfloat16 products against PyTorch's bfloat16 and against rnnpy's own float32.

For every cell, shape (T, B, I, H), thread count and mode (forward, train, as
in rnnpy.tools.bench) it times, in alternation and on the same weights and
data:

  rnnpy bf16   the layer with compute_dtype="bfloat16" (float32 arrays in and
               out, products on bfloat16 operands with float32 accumulation)
  rnnpy f32    the same layer in float32
  torch bf16   torch.nn's module with its parameters and inputs in
               torch.bfloat16 (oneDNN's RNN kernels, AMX where present)

GFLOP/s counts the work as the float32 table does (rnnpy.tools.bench.flops);
the fraction of peak divides by the machine's measured bfloat16 peak of one
core times the thread count: ``rnnpy._core.bf16_peak`` times a loop of
independent AMX TDPBF16PS tile products, or AVX512-BF16 vdpbf16ps where the
CPU has no tiles. ``torch/rnnpy`` is torch bf16's median time over rnnpy
bf16's (above 1: rnnpy is faster); ``f32/bf16`` rnnpy float32's over rnnpy
bf16's. A CPU with neither AMX-BF16 nor AVX512-BF16 gets the layers' refusal.

rnnpy.tools.bench runs this and hands it its own timing and layer helpers
(the ``bench`` argument), so that the two modules do not import each other.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, List, Sequence, Tuple


# (T, B, I, H): the range (H 256-512, B 32-128), a small and a batch-1 shape
BF16_SHAPES: List[Tuple[int, int, int, int]] = [
    (100, 64, 128, 128), (50, 32, 256, 256), (50, 64, 256, 256), (50, 128, 256, 256),
    (25, 32, 512, 512), (25, 64, 512, 512), (25, 128, 512, 512), (100, 1, 512, 512),
]

BF16_HEADER = (f"{'cell':5} {'mode':7} {'T':>4} {'B':>4} {'I':>5} {'H':>5} {'thr':>3} | "
               f"{'bf16 ms':>9} {'sprd':>5} {'GF/s':>6} {'%peak':>5} | {'f32 ms':>9} "
               f"{'f32/bf16':>8} | {'torch ms':>9} {'GF/s':>6} | {'torch/rnnpy':>11}")


def bf16_peak() -> Dict[str, Any]:
    """{"isa", "gflops"}: one core's measured bfloat16 peak on the best
    hardware kernel here (AMX, else AVX512-BF16)."""
    from .. import _core
    from ..nn.precision import NO_BF16_HARDWARE, bf16_hardware

    isa = bf16_hardware()
    if isa is None:
        raise ValueError(NO_BF16_HARDWARE)
    return {"isa": isa, "gflops": float(_core.bf16_peak(isa=isa))}


def _format_row(r: dict) -> str:
    b, f, t = r["rnnpy_bf16"], r["rnnpy_f32"], r.get("torch_bf16")
    s = (f"{r['cell']:5} {r['mode']:7} {r['T']:4d} {r['B']:4d} {r['I']:5d} {r['H']:5d} "
         f"{r['threads']:3d} | {b['median'] * 1e3:9.3f} "
         f"{(b['max'] - b['min']) / b['median'] * 100:4.0f}% {b['gflops']:6.1f} "
         f"{b['peak_frac'] * 100:4.1f}% | {f['median'] * 1e3:9.3f} {r['f32_over_bf16']:7.2f}x | ")
    if t:
        return s + f"{t['median'] * 1e3:9.3f} {t['gflops']:6.1f} | {r['ratio']:10.2f}x"
    return s + f"{'-':>9} {'-':>6} | {'-':>11}"


def _bf16_steps(bench: ModuleType, cell: str, shape: Tuple[int, int, int, int], threads: int,
                use_torch: bool) -> Dict[str, Dict[str, Callable[[], Any]]]:
    """forward and train callables of rnnpy bf16, rnnpy f32 and torch bf16."""
    T, B, I, H = shape
    x, dout = bench._data(T, B, I, H)
    out: Dict[str, Dict[str, Callable[[], Any]]] = {}
    layers = {}
    for name, compute in (("rnnpy_bf16", "bfloat16"), ("rnnpy_f32", "float32")):
        layers[name] = bench._rnnpy_layer(cell, I, H, threads, compute_dtype=compute)
        out[name] = bench._rnnpy_calls(layers[name], x, dout)
    if use_torch:
        import torch

        m = bench._torch_layer(cell, I, H, layers["rnnpy_f32"]).to(torch.bfloat16)
        out["torch_bf16"] = bench._torch_calls(m, x, dout, torch.bfloat16)
    return out


def bench_bf16(bench: ModuleType, cells: Sequence[str], shapes: Sequence[Tuple[int, int, int, int]],
               threads: Sequence[int], modes: Sequence[str], use_torch: bool, peak: float,
               repeat: int, warmup: int, min_time: float, log: Callable[[str], None]) -> List[dict]:
    """One row per (threads, cell, shape, mode); peak is one core's bf16 GFLOP/s;
    bench is rnnpy.tools.bench (its timing, data and layer helpers)."""
    rows = []
    for n, cell, shape in bench._grid(cells, shapes, threads, use_torch):
        T, B, I, H = shape
        steps = _bf16_steps(bench, cell, shape, n, use_torch)
        for mode in modes:
            fl = bench.flops(cell, T, B, I, H, mode)
            timed = bench.time_paired({lib: fns[mode] for lib, fns in steps.items()}, repeat, warmup,
                                      min_time, bench.settle_for(n, use_torch))
            row: Dict[str, Any] = {"cell": cell, "T": T, "B": B, "I": I, "H": H, "threads": n,
                                   "mode": mode}
            for lib, t in timed.items():
                gf = fl / t["median"] / 1e9
                row[lib] = {**t, "gflops": gf, "peak_frac": gf / (peak * n)}
            row["f32_over_bf16"] = timed["rnnpy_f32"]["median"] / timed["rnnpy_bf16"]["median"]
            if "torch_bf16" in timed:
                row["ratio"] = timed["torch_bf16"]["median"] / timed["rnnpy_bf16"]["median"]
            rows.append(row)
            log(_format_row(row))
    return rows


def run(bench: ModuleType, args: Any, use_torch: bool, log: Callable[[str], None]) -> Dict[str, Any]:
    """The bf16 part of `bench` (bench: rnnpy.tools.bench; args: its parsed options)."""
    peak = bf16_peak()
    log(f"rnnpy bench: bfloat16 compute, bf16 peak {peak['gflops']:.0f} GFLOP/s per core "
        f"(measured: {peak['isa']} multiply-add loop, one core)")
    log("times are medians; sprd = (max-min)/median; %peak of the bf16 peak times the threads; "
        "torch/rnnpy > 1 means rnnpy bf16 is faster")
    log("")
    log(BF16_HEADER)
    rows = bench_bf16(bench, args.cells, args.shapes or BF16_SHAPES, args.threads, args.modes,
                      use_torch, peak["gflops"], args.repeat, args.warmup, args.min_time, log)
    return {"peak": {**peak, "source": f"rnnpy._core.bf16_peak(isa={peak['isa']!r}), one core"},
            "rows": rows}


__all__ = ["BF16_SHAPES", "bench_bf16", "bf16_peak", "run"]
