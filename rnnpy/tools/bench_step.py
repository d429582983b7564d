"""The whole char-rnn training step of ``python -m rnnpy bench``: rnnpy's
fit against PyTorch's loop, on the same model, data and weights.

The model is what a user of either library builds for char-rnn: an
embedding (V tokens -> E), an LSTM of H units and a dense layer back to V
scores, trained with softmax cross-entropy over every step, global-norm
gradient clipping (5) and Adam (lr 2e-3); float32, B rows of T tokens.

  rnnpy   ``rnnpy.fit`` over ``--step-batches`` batches (Sequential(Embedding,
          LSTM, Dense), loss "softmax_cross_entropy", clip_norm, Adam; no
          metrics, no progress), so the time is that of fit's own loop
  torch   nn.Embedding, nn.LSTM(batch_first=True), nn.Linear,
          F.cross_entropy, clip_grad_norm_, torch.optim.Adam, the same
          batches one after another

Every library and thread count (rnnpy's layers ``threads=n``, PyTorch's
``torch.set_num_threads(n)``) runs in alternation in one process, so a
change in the machine's load hits all of them alike; the table gives the
median ms per step, characters per second (B*T / median), torch/rnnpy
(above 1: rnnpy is faster), each library's speed-up from its first thread
count to each other one, and ``cores``: rnnpy's process CPU time over wall
time while it ran (1.0 for a threads=1 step that uses one core), and
``pool thr/all``: the share of the kernels' parallel jobs that ran on
several threads (the rest ran on the calling thread alone because threads
had just cost more than they saved: the cores were busy with other work).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .timing import settle_for, time_alternating

# (V, E, H, B, T): the char-rnn step of the benchmark
STEP_SHAPE: Tuple[int, int, int, int, int] = (65, 64, 256, 64, 100)
STEP_LR = 2e-3
STEP_CLIP = 5.0

STEP_HEADER = (f"{'V':>4} {'E':>4} {'H':>5} {'B':>4} {'T':>4} {'thr':>3} | {'rnnpy ms':>9} "
               f"{'chars/s':>8} {'cores':>5} | {'torch ms':>9} {'chars/s':>8} | "
               f"{'torch/rnnpy':>11} | {'rnnpy xthr':>10} {'torch xthr':>10} | {'pool thr/all':>12}")


def _format_step_row(r: Dict[str, Any]) -> str:
    rp, tp = r["rnnpy"], r.get("torch")
    s = (f"{r['V']:4d} {r['E']:4d} {r['H']:5d} {r['B']:4d} {r['T']:4d} {r['threads']:3d} | "
         f"{rp['median'] * 1e3:9.2f} {rp['chars_per_s']:8.0f} {rp['cores']:5.2f} | ")
    s += (f"{tp['median'] * 1e3:9.2f} {tp['chars_per_s']:8.0f} | {r['ratio']:10.2f}x | "
          if tp else f"{'-':>9} {'-':>8} | {'-':>11} | ")
    s += f"{r['rnnpy_speedup']:9.2f}x "
    s += f"{r['torch_speedup']:9.2f}x" if tp else f"{'-':>10}"
    jobs = rp["pool_threaded"] + rp["pool_alone"]
    s += f" | {rp['pool_threaded'] / jobs:11.0%} " if jobs else f" | {'-':>12}"
    return s


def _batches(shape: Tuple[int, int, int, int, int], n: int,
             seed: int = 0) -> List[Tuple[np.ndarray, np.ndarray]]:
    """n batches (x, y) of (B, T) token ids, y the next tokens of x."""
    V, _, _, B, T = shape
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seq = rng.integers(0, V, (B, T + 1))
        out.append((seq[:, :-1].copy(), seq[:, 1:].copy()))
    return out


def rnnpy_step(shape: Tuple[int, int, int, int, int], threads: int,
               batches: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[Any, Callable[[], None]]:
    """(model, run): run() trains the rnnpy model with fit over batches."""
    import rnnpy
    from rnnpy import optim

    V, E, H, _, _ = shape
    model = rnnpy.Sequential(rnnpy.Embedding(V, E, seed=0),
                             rnnpy.LSTM(E, H, seed=1, threads=threads),
                             rnnpy.Dense(H, V, seed=2))
    opt = optim.Adam(model, lr=STEP_LR)
    data = list(batches)

    def run() -> None:
        rnnpy.fit(model, data, loss="softmax_cross_entropy", optimizer=opt, epochs=1,
                  clip_norm=STEP_CLIP, shuffle=False, metrics=[], verbose=0, seed=0)

    return model, run


def torch_step(model: Any, threads: int,
               batches: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[Any, Callable[[], None]]:
    """(net, run): run() trains net, PyTorch's twin of the rnnpy model (same
    weights), over batches."""
    import torch
    import torch.nn.functional as F

    emb, lstm, dense = model.modules
    V, E = emb.params["weight"].shape
    H = lstm.hidden_size

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, batch_first=True)
            self.dense = torch.nn.Linear(H, V)

        def forward(self, x: Any) -> Any:
            return self.dense(self.lstm(self.emb(x))[0])

    net = Net()
    with torch.no_grad():
        net.emb.weight.copy_(torch.from_numpy(emb.params["weight"].copy()))
        for name, p in net.lstm.named_parameters():
            p.copy_(torch.from_numpy(lstm.params[name].copy()))
        net.dense.weight.copy_(torch.from_numpy(dense.params["weight"].copy()))
        net.dense.bias.copy_(torch.from_numpy(dense.params["bias"].copy()))
    opt = torch.optim.Adam(net.parameters(), lr=STEP_LR)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def run() -> None:
        torch.set_num_threads(threads)
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            out = net(x)
            loss = F.cross_entropy(out.reshape(-1, V), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), STEP_CLIP)
            opt.step()

    return net, run


def bench_step(threads: Sequence[int], use_torch: bool, repeat: int, warmup: int,
               min_time: float, log: Callable[[str], None],
               shape: Tuple[int, int, int, int, int] = STEP_SHAPE,
               steps: int = 5) -> List[Dict[str, Any]]:
    """One row per thread count: rnnpy's and PyTorch's ms per step (medians
    over runs of ``steps`` batches each, all libraries and thread counts in
    alternation), chars/s, torch/rnnpy, speed-ups over threads[0], and
    rnnpy's cores (CPU time / wall time)."""
    V, E, H, B, T = shape
    batches = _batches(shape, steps)
    fns: Dict[str, Callable[[], None]] = {}
    for n in threads:
        model, fns[f"rnnpy/{n}"] = rnnpy_step(shape, n, batches)
        if use_torch:
            fns[f"torch/{n}"] = torch_step(model, n, batches)[1]
    timed = time_alternating(fns, repeat, warmup, min_time,
                             settle_for(max(threads), use_torch))

    def summary(key: str) -> Dict[str, float]:
        w = [t / steps for t in timed["wall"][key]]
        med = statistics.median(w)
        threaded, alone = timed["pool"][key]
        return {"median": med, "min": min(w), "max": max(w), "runs": len(w),
                "chars_per_s": B * T / med,
                "cores": sum(timed["cpu"][key]) / sum(timed["wall"][key]),
                "pool_threaded": threaded, "pool_alone": alone}

    rows = []
    first = threads[0]
    for n in threads:
        row: Dict[str, Any] = {"V": V, "E": E, "H": H, "B": B, "T": T, "threads": n,
                               "rnnpy": summary(f"rnnpy/{n}")}
        row["rnnpy_speedup"] = (statistics.median(timed["wall"][f"rnnpy/{first}"])
                                / statistics.median(timed["wall"][f"rnnpy/{n}"]))
        if use_torch:
            row["torch"] = summary(f"torch/{n}")
            row["ratio"] = row["torch"]["median"] / row["rnnpy"]["median"]
            row["torch_speedup"] = (statistics.median(timed["wall"][f"torch/{first}"])
                                    / statistics.median(timed["wall"][f"torch/{n}"]))
        rows.append(row)
        log(_format_step_row(row))
    return rows


def parse_step_shape(text: str) -> Tuple[int, int, int, int, int]:
    """'V,E,H,B,T' of positive ints (the --step-shape option)."""
    import argparse

    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 5 or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected 'V,E,H,B,T' of positive ints, got {text!r}")
    return vals  # type: ignore[return-value]


def step_title(threads: Sequence[int], steps: int,
               shape: Optional[Tuple[int, int, int, int, int]] = None) -> str:
    V, E, H, B, T = shape or STEP_SHAPE
    return (f"the char-rnn training step (Embedding {V}->{E}, LSTM {H}, Dense->{V}, softmax CE, "
            f"clip {STEP_CLIP:g}, Adam; fit over {steps} batches per run; threads "
            f"{', '.join(map(str, threads))} interleaved; xthr = speed-up over {threads[0]} "
            "thread(s))")
