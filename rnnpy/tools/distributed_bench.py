"""Measurements behind README's "Training across machines": the cost of the
gradient exchange and the training throughput of N ranks.

    mpiexec -n 2 python -m rnnpy.distributed_bench collectives   # seconds per exchange
    mpiexec -n 2 python -m rnnpy.distributed_bench train --hidden 128 --batch-size 32

collectives: per message size (float32 elements), the median time of the
fixed-order exchange (each method of allreduce_gradients)
and of MPI's own Allreduce, the slowest rank of each repetition; and the
local part alone (copies and the rank-order sum).
train: sequences per second of fit(distributed=True) on a char-rnn model
(Embedding -> LSTM -> Dense over a synthetic text), and the share of the
step spent in the gradient exchange. Prints one JSON line from rank 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List

import numpy as np

from ..train import distributed as dist


class _Grads:
    def __init__(self, n: int) -> None:
        self.flat_grads = np.random.default_rng(dist.rank()).standard_normal(n).astype(np.float32)


def _timed(fn: Any, repeat: int) -> float:
    """Median over repeat runs of the slowest rank's time of fn()."""
    comm = dist._world()
    times = []
    for _ in range(repeat):
        comm.Barrier()
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        times.append(comm.allreduce(t, op=dist._MPI.MAX))
    return float(np.median(times))


def collectives(sizes: List[int], repeat: int) -> List[Dict[str, Any]]:
    """Seconds per exchange of a float32 gradient of each size."""
    p = dist.world_size()
    rows = []
    for n in sizes:
        g = _Grads(n)
        buf = g.flat_grads.copy()
        reps = max(5, min(repeat, int(repeat * 65536 / max(n, 1)) + 5))
        row: Dict[str, Any] = {"ranks": p, "elements": n, "bytes": 4 * n}
        for method in ("allgather", "alltoall") + (("halving",) if not p & (p - 1) else ()):
            row[method] = _timed(lambda m=method: dist.allreduce_gradients(g, True, m), reps)
        row["native"] = _timed(lambda: dist.native_allreduce(buf), reps)
        # the local work of the alltoall method alone: the rank-order sum of a 1/p slice
        m = -(-n // p)
        recv = np.ones((p, m), np.float32)
        mine = np.empty(m, np.float32)

        def local() -> None:
            dist._sum_in_rank_order(recv, mine)

        row["local"] = _timed(local, reps)
        rows.append(row)
    return rows


def train(hidden: int, layers: int, batch_size: int, seq_len: int, steps: int,
          embedding: int = 32, vocab: int = 83) -> Dict[str, Any]:
    """Sequences per second of a char-rnn fit over this job's ranks."""
    from ..data import sequence_batches
    from ..demos.char_rnn import build_model
    from ..train.loop import fit
    from ..train.optimizers import Adam

    p = dist.world_size()
    ids = np.random.default_rng(0).integers(0, vocab, batch_size * (seq_len * (steps + 1) + 1))
    batches = list(sequence_batches(ids, batch_size, seq_len, drop_last=True))[:steps + 1]
    model = build_model(vocab, hidden, layers, embedding, "lstm", 0.0, seed=0)
    spent = {"exchange": 0.0, "exchange_cpu": 0.0}
    original = dist.Session.allreduce_gradients

    def timed_exchange(self: Any, m: Any) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        original(self, m)
        spent["exchange"] += time.perf_counter() - t0
        spent["exchange_cpu"] += time.process_time() - c0

    dist.Session.allreduce_gradients = timed_exchange  # type: ignore[assignment]
    kw = dict(loss="softmax_cross_entropy", clip_norm=5.0, stateful=True, metrics=(),
              progress=False, distributed=True)
    fit(model, batches[:1], optimizer=Adam(model, lr=1e-3), **kw)   # warm-up
    spent["exchange"] = spent["exchange_cpu"] = 0.0
    dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, batches[1:], optimizer=Adam(model, lr=1e-3), **kw)
    cpu = time.process_time() - c0
    seconds = dist._world().allreduce(time.perf_counter() - t0, op=dist._MPI.MAX)
    dist.Session.allreduce_gradients = original  # type: ignore[assignment]
    exchange = dist._world().allreduce(spent["exchange"], op=dist._MPI.MAX)
    # CPU time outside the exchange (which spins while it waits for a slower
    # rank): what a step costs a rank that has its core to itself
    compute_cpu = dist._world().allreduce(cpu - spent["exchange_cpu"], op=dist._MPI.MAX)
    return {"ranks": p, "hidden": hidden, "layers": layers, "batch_size": batch_size,
            "seq_len": seq_len, "steps": steps, "params": int(model.num_params),
            "seconds": seconds, "sequences_per_second": steps * batch_size / seconds,
            "step_ms": 1e3 * seconds / steps, "exchange_ms": 1e3 * exchange / steps,
            "compute_cpu_ms": 1e3 * compute_cpu / steps}


def fit_model(rows: List[Dict[str, Any]], method: str) -> Dict[str, float]:
    """Least-squares (latency alpha, seconds per byte) of the ring form
    t = 2 (p-1) alpha + 2 (p-1)/p x bytes x per_byte over measured rows."""
    a = np.array([[2 * (r["ranks"] - 1), 2 * (r["ranks"] - 1) / r["ranks"] * r["bytes"]]
                  for r in rows], dtype=float)
    t = np.array([r[method] for r in rows], dtype=float)
    w = 1.0 / t                                        # relative error, not absolute
    (alpha, per_byte), *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
    return {"alpha_s": float(alpha), "bandwidth_Bps": float(1.0 / per_byte),
            "max_rel_error": float(np.max(np.abs(a @ [alpha, per_byte] - t) / t))}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnnpy.distributed_bench")
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collectives")
    c.add_argument("--sizes", default="1024,16384,65536,262144,1048576,4194304,16777216")
    c.add_argument("--repeat", type=int, default=50)
    t = sub.add_parser("train")
    t.add_argument("--hidden", type=int, default=128)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--seq-len", type=int, default=64)
    t.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    if args.what == "collectives":
        rows = collectives([int(s) for s in args.sizes.split(",")], args.repeat)
        if dist.is_main():
            fits = {m: fit_model(rows, m) for m in rows[0] if m in (
                "alltoall", "allgather", "halving", "native", "local")}
            print(json.dumps({"rows": rows, "fits": fits}))
    else:
        r = train(args.hidden, args.layers, args.batch_size, args.seq_len, args.steps)
        if dist.is_main():
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
