"""Workloads for tests/train/test_distributed.py, run in one process (the reference)
or under ``mpiexec -n N python tests/train/mpi_worker.py MODE ...`` (the ranks).

Every workload is float64 and deterministic: N ranks must reproduce what one
process computes on the same global batches, to rounding.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, Dict, Optional

import numpy as np

import rnnpy

F64 = "float64"


def build(kind: str, dropout: float = 0.0) -> rnnpy.Sequential:
    """A small model for each workload."""
    if kind == "stateful":
        return rnnpy.Sequential(rnnpy.Embedding(7, 4, dtype=F64, seed=0),
                                rnnpy.GRU(4, 5, num_layers=2, dropout=dropout, dtype=F64, seed=1),
                                rnnpy.Dense(5, 7, dtype=F64, seed=2))
    if kind == "last":
        return rnnpy.Sequential(rnnpy.LSTM(3, 5, dtype=F64, seed=1), rnnpy.LastStep(dtype=F64),
                                rnnpy.Dense(5, 4, dtype=F64, seed=2))
    return rnnpy.Sequential(rnnpy.LSTM(3, 5, num_layers=2, dropout=dropout, dtype=F64, seed=1),
                            rnnpy.Dense(5, 4, dtype=F64, seed=2))


def dataset(kind: str) -> Dict[str, Any]:
    """fit's data and arguments for a workload. "masked": 13 sequences with
    lengths in batches of 5 (uneven splits: 5 -> 3+2, the last 3 -> 2+1);
    "ragged": a list of batches of 5, 1 and 4 rows (a rank with no row);
    "stateful": consecutive windows of 3 rows (truncated BPTT); "last":
    last-step classification in batches of 8."""
    rng = np.random.default_rng(0)
    if kind == "stateful":
        ids = rng.integers(0, 7, 300)
        batches = list(rnnpy.data.sequence_batches(ids, 3, 9))
        return dict(train=lambda: iter(batches), val=lambda: iter(batches[:4]), stateful=True,
                    metrics=("accuracy",), x=batches[0][0], lengths=None)
    if kind == "last":
        x = rng.standard_normal((40, 6, 3))
        y = np.arange(40) % 4
        return dict(train=(x, y), val=(x[:9], y[:9]), batch_size=8, x=x, lengths=None)
    x = rng.standard_normal((13, 6, 3))
    y = rng.integers(0, 4, (13, 6))
    lengths = rng.integers(1, 7, 13)
    if kind == "ragged":
        cuts = [(0, 5), (5, 6), (6, 10)]
        batches = [(x[a:b], y[a:b], lengths[a:b]) for a, b in cuts]
        return dict(train=batches, val=batches, x=x, lengths=lengths)
    return dict(train=(x, y, lengths), val=(x, y, lengths), batch_size=5, x=x, lengths=lengths)


def train(kind: str, epochs: int, distributed: bool, dropout: float = 0.0,
          checkpoint: Optional[str] = None, resume: Optional[str] = None,
          optimizer: str = "adam", progress: bool = False,
          class_weight: bool = False) -> Dict[str, Any]:
    """Trains a workload; returns parameters, history, evaluate and predict.
    class_weight: a class-weighted loss (weights far from 1, one class 0)."""
    d = dataset(kind)
    model = build(kind, dropout)
    opt = (rnnpy.optim.Adam(model, lr=1e-2) if optimizer == "adam"
           else rnnpy.optim.SGD(model, lr=0.3, momentum=0.9))
    callbacks = [rnnpy.ModelCheckpoint(checkpoint, monitor="loss")] if checkpoint else []
    history = rnnpy.fit(model, d["train"], loss="softmax_cross_entropy", optimizer=opt,
                        epochs=epochs, batch_size=d.get("batch_size", 32), val=d["val"],
                        metrics=d.get("metrics", ("accuracy",)), clip_norm=1.0,
                        stateful=d.get("stateful", False), seed=5, callbacks=callbacks,
                        resume=resume, progress=progress, distributed=distributed,
                        class_weight={0: 3.0, 1: 0.25, 2: 0.0} if class_weight else None)
    ev = rnnpy.evaluate(model, d["val"], loss="softmax_cross_entropy", batch_size=4,
                        stateful=d.get("stateful", False), distributed=distributed)
    out = rnnpy.predict(model, d["x"], lengths=d["lengths"], batch_size=3, distributed=distributed)
    return {"params": model.flat_params.copy(), "history": history.history, "evaluate": ev,
            "predict": out}


def solve(distributed: bool, batch_size: int = 5, padding: str = "post") -> Dict[str, Any]:
    """The seq-classification until-solved loop in float64 on easy, with a
    low target so that it checks, fails a check and stops mid-epoch."""
    from rnnpy.demos import seq_classification as sc

    build = sc.build_model
    sc.build_model = lambda *a, **k: build(*a, dtype=F64, **k)
    try:
        r = sc.solve("easy", hidden=6, lr=1e-2, batch_size=batch_size, epochs=2, target=0.55,
                     window=30, test_size=40, padding=padding, seed=1, progress=False,
                     distributed=distributed)
    finally:
        sc.build_model = build
    return {"params": r["model"].flat_params.copy(), "solved": r["solved"],
            "sequences_seen": r["sequences_seen"], "checks": r["checks"],
            "history": r["history"]}


def char_minutes(checkpoint: str, distributed: bool) -> Dict[str, Any]:
    """char-rnn on a time budget (a few seconds), checkpointing often."""
    from rnnpy.demos import char_rnn

    r = char_rnn.run(max_chars=3000, hidden=8, layers=1, embedding=4, batch_size=5, seq_len=8,
                     sample_length=5, minutes=0.03, checkpoint=checkpoint, checkpoint_every=0.5,
                     progress=False, distributed=distributed)
    return {"params": r["model"].flat_params.copy(), "chars_trained": r["chars_trained"],
            "epochs_done": r["epochs_done"], "history": r["history"], "val_loss": r["val_loss"]}


def main(argv: list) -> int:
    from rnnpy import distributed as dist

    mode = argv[0]
    if mode == "train":   # train KIND EPOCHS OUT [key=value ...]
        kind, epochs, out = argv[1], int(argv[2]), argv[3]
        opts = dict(a.split("=", 1) for a in argv[4:])
        dist.init()
        if opts.get("checkpoint_per_rank"):
            opts["checkpoint"] = f"{opts.pop('checkpoint_per_rank')}.{dist.rank()}"
        r = train(kind, epochs, True, dropout=float(opts.get("dropout", 0.0)),
                  checkpoint=opts.get("checkpoint"), resume=opts.get("resume"),
                  optimizer=opts.get("optimizer", "adam"), progress=bool(opts.get("progress")),
                  class_weight=bool(opts.get("class_weight")))
        everyone = dist._world().allgather(r["params"])
        same = all(np.array_equal(p, r["params"]) for p in everyone)
        if dist.is_main():
            np.savez(out, params=r["params"], predict=r["predict"])
            with open(out + ".json", "w") as f:
                json.dump({"history": r["history"], "evaluate": r["evaluate"],
                           "ranks_identical": same, "ranks": dist.world_size()}, f)
        return 0
    if mode in ("solve", "char-minutes"):   # solve OUT [BATCH PADDING] / char-minutes OUT CKPT
        out = argv[1]
        dist.init()
        r = solve(True, int(argv[2]), argv[3]) if mode == "solve" else char_minutes(argv[2], True)
        everyone = dist._world().allgather(
            (r["params"], {k: v for k, v in r.items() if k != "params"}))
        if dist.is_main():
            np.savez(out, params=r["params"])
            with open(out + ".json", "w") as f:
                json.dump({**{k: v for k, v in r.items() if k != "params"},
                           "ranks": dist.world_size(),
                           "ranks_identical": all(np.array_equal(p, r["params"]) and
                                                  json.dumps(m, sort_keys=True) == json.dumps(
                                                      {k: v for k, v in r.items() if k != "params"},
                                                      sort_keys=True)
                                                  for p, m in everyone)}, f)
        return 0
    if mode == "generators":   # per rank, derived from (seed, epoch, rank)
        model = build("stateful", dropout=0.3)
        session = dist.Session()
        session.begin_epoch(model, 5, 2)
        first = json.dumps(model.rng_state(), sort_keys=True)
        session.begin_epoch(model, 5, 2)
        again = json.dumps(model.rng_state(), sort_keys=True)
        session.begin_epoch(model, 5, 3)
        later = json.dumps(model.rng_state(), sort_keys=True)
        everyone = dist._world().allgather(first)
        if dist.is_main():
            print(json.dumps({"distinct_ranks": len(set(everyone)) == len(everyone),
                              "repeatable": first == again, "new_each_epoch": later != first}))
        return 0
    if mode == "allreduce":   # every method sums in rank order, on every rank alike
        dist.init()
        p, me = dist.world_size(), dist.rank()
        model = build("masked")
        grads = [np.random.default_rng(k).standard_normal(model.flat_grads.size) * 10.0 ** k
                 for k in range(p)]
        expect = grads[0].copy()
        for g in grads[1:]:
            expect += g
        tree = list(grads)                        # recursive halving's pairwise tree
        while len(tree) > 1:
            h = len(tree) // 2
            tree = [tree[r] + tree[r + h] for r in range(h)]
        methods = ("allgather", "alltoall") + (("halving",) if not p & (p - 1) else ())
        results = {}
        for method in methods:
            model.flat_grads[...] = grads[me]
            dist.allreduce_gradients(model, average=False, method=method)
            results[method] = model.flat_grads.copy()
        model.flat_grads[...] = grads[me]
        dist.allreduce_gradients(model)
        default = "alltoall" if p & (p - 1) else "halving"
        ok = all(np.array_equal(v, tree[0] if m == "halving" else expect)
                 for m, v in results.items()) \
            and np.array_equal(model.flat_grads, results[default] / p)
        # a buffer smaller than the job: empty slices
        tiny = type("Tiny", (), {"flat_grads": np.full(3, float(me + 1))})()
        for method in methods:
            tiny.flat_grads[...] = me + 1
            dist.allreduce_gradients(tiny, average=False, method=method)
            ok = ok and np.array_equal(tiny.flat_grads, np.full(3, p * (p + 1) / 2))
        everyone = dist._world().allgather(ok)
        if dist.is_main():
            print(json.dumps({"ok": all(everyone), "ranks": p}))
        return 0
    if mode in ("raise", "kill", "raise-outside"):
        dist.init()
        if mode == "raise-outside" and dist.rank() == 1:
            raise RuntimeError("failure outside fit on purpose")
        d = dataset("last")
        model = build("last")

        class Fail(rnnpy.training.Callback):
            def on_epoch_end(self, trainer: Any, epoch: int, logs: Dict[str, float]) -> None:
                if epoch == 1 and dist.rank() == 1:
                    if mode == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    raise RuntimeError("failure inside fit on purpose")

        rnnpy.fit(model, d["train"], loss="softmax_cross_entropy",
                  optimizer=rnnpy.optim.SGD(model, lr=0.1), epochs=100_000, batch_size=8,
                  callbacks=[Fail()], progress=False, distributed=True)
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
