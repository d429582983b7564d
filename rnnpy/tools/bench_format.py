"""The benchmark's table rows and its command-line value parsers.
"""
from __future__ import annotations

from typing import Optional


# ------------------------------------------------------------------ output
def _ms(t: Optional[dict]) -> str:
    return "-" if t is None else f"{t['median'] * 1e3:9.3f}"


def _spread(t: dict) -> str:
    return f"{(t['max'] - t['min']) / t['median'] * 100:4.0f}%"


CELL_HEADER = (f"{'cell':5} {'mode':7} {'T':>4} {'B':>4} {'I':>5} {'H':>5} {'thr':>3} | "
               f"{'rnnpy ms':>9} {'sprd':>5} {'GF/s':>6} {'%peak':>5} | {'torch ms':>9} {'GF/s':>6} | "
               f"{'torch/rnnpy':>11}")


def _format_cell_row(r: dict) -> str:
    rp, tp = r["rnnpy"], r.get("torch")
    s = (f"{r['cell']:5} {r['mode']:7} {r['T']:4d} {r['B']:4d} {r['I']:5d} {r['H']:5d} "
         f"{r['threads']:3d} | {_ms(rp)} {_spread(rp)} {rp['gflops']:6.1f} {rp['peak_frac'] * 100:4.0f}% | ")
    if tp:
        s += f"{_ms(tp)} {tp['gflops']:6.1f} | {r['ratio']:10.2f}x"
    else:
        s += f"{'-':>9} {'-':>6} | {'-':>11}"
    return s


OPTION_HEADER = (f"{'cell':5} {'option':16} {'mode':7} {'T':>4} {'B':>4} {'I':>5} {'H':>5} "
                 f"{'thr':>3} | {'plain ms':>9} {'option ms':>9} {'cost':>6} | {'torch ms':>9} "
                 f"{'torch/rnnpy':>11}")


def _format_option_row(r: dict) -> str:
    s = (f"{r['cell']:5} {r['option']:16} {r['mode']:7} {r['T']:4d} {r['B']:4d} {r['I']:5d} "
         f"{r['H']:5d} {r['threads']:3d} | {_ms(r['plain'])} {_ms(r['rnnpy'])} "
         f"{r['cost']:5.2f}x | ")
    if "torch" in r:
        return s + f"{_ms(r['torch'])} {r['ratio']:10.2f}x"
    return s + f"{'-':>9} {'-':>11}"


GEMM_HEADER = (f"{'kind':6} {'M':>5} {'N':>5} {'K':>5} {'thr':>3} | {'rnnpy us':>10} {'GF/s':>6} | "
               f"{'numpy us':>10} {'GF/s':>6} | {'numpy/rnnpy':>11} | {'pool':>4}")


def _format_gemm_row(r: dict) -> str:
    rp = r["rnnpy"]
    jobs = rp.get("pool_threaded", 0) + rp.get("pool_alone", 0)
    pool = f"{rp['pool_threaded'] / jobs:4.0%}" if jobs else f"{'-':>4}"
    return (f"{r['kind']:6} {r['M']:5d} {r['N']:5d} {r['K']:5d} {r['threads']:3d} | "
            f"{rp['median'] * 1e6:10.1f} {rp['gflops']:6.1f} | "
            f"{r['numpy']['median'] * 1e6:10.1f} {r['numpy']['gflops']:6.1f} | {r['ratio']:10.2f}x"
            f" | {pool}")


MEM_HEADER = f"{'cell':5} {'T':>4} {'B':>4} {'I':>5} {'H':>5} {'thr':>3} | {'rnnpy MiB':>9} | {'torch MiB':>9}"


def _format_mem_row(r: dict) -> str:
    t = r.get("torch")
    return (f"{r['cell']:5} {r['T']:4d} {r['B']:4d} {r['I']:5d} {r['H']:5d} {r['threads']:3d} | "
            f"{r['rnnpy']['step_kib'] / 1024:9.1f} | "
            + (f"{t['step_kib'] / 1024:9.1f}" if t else f"{'-':>9}"))


# -------------------------------------------------------------------- main
