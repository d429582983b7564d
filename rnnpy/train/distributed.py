"""Data-parallel training over MPI: every rank holds the whole model, trains
on its rows of each global batch, and the gradients are summed across ranks
once per step, so that N ranks take the steps one process would take.

    mpiexec -n 4 python train.py          # train.py calls fit(..., distributed=True)

    from rnnpy import distributed
    distributed.init()                    # idempotent; fit(distributed=True) calls it
    distributed.rank(), distributed.world_size(), distributed.is_main()
    distributed.broadcast_parameters(model)     # rank 0's parameters everywhere
    distributed.allreduce_gradients(model)      # sum (or mean) of model.flat_grads
    distributed.barrier()

Needs mpi4py and an MPI library (``pip install "rnnpy[mpi]"``: mpi4py and
MPICH's wheel, whose ``mpiexec`` runs the ranks). Importing rnnpy never needs
them; asking for distribution without them raises ImportError saying how to
install them.

Reproducibility: the gradient sum is not MPI's Allreduce, whose summation
order is the implementation's choice. Each slice of the buffer is summed by
one rank in an order fixed by the number of ranks p (recursive halving's
pairwise tree for powers of two; otherwise rank order 0, 1, ..., p-1 after
an Alltoallv that hands rank k slice k of every gradient), and an
Allgatherv shares the summed slices. So every rank applies the same update,
the parameters never drift apart, and a run is reproducible for a given
number of ranks (see allreduce_gradients).

Faults: inside fit, evaluate and predict with distributed=True in a job of
more than one rank, an exception on any rank prints its traceback with the
rank's number and aborts the whole job (MPI_Abort), so that no rank waits
forever in a collective for one that has gone; after init() in such a job,
an uncaught exception anywhere in the script does the same. A rank killed by
a signal ends the job through mpiexec, which names its process id; the first
distributed call prints which rank each process id is.
"""
from __future__ import annotations

import functools
import os
import socket
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import numpy as np


__all__ = ["init", "rank", "world_size", "is_main", "barrier", "broadcast_parameters",
           "allreduce_gradients", "shard_range", "available"]

INSTALL_HINT = 'pip install "rnnpy[mpi]"  (mpi4py and an MPI library such as the mpich wheel)'

_comm: Any = None
_MPI: Any = None
_announced = False

F = TypeVar("F", bound=Callable[..., Any])


def available() -> bool:
    """Whether mpi4py can be imported (it brings MPI up when it is)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init() -> None:
    """Brings MPI up (once; later calls do nothing). Under ``mpiexec -n N``
    the job has N ranks; started without mpiexec it is a job of one rank.
    ImportError, saying how to install them, without mpi4py or an MPI library."""
    global _comm, _MPI
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"distributed training needs mpi4py and an MPI library: {INSTALL_HINT} "
                          f"({exc})") from None
    except RuntimeError as exc:   # mpi4py present but no MPI library it can load
        raise ImportError(f"distributed training: mpi4py found no usable MPI library ({exc}); "
                          f"{INSTALL_HINT}") from None
    _MPI, _comm = MPI, MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _abort_on_uncaught()


def _abort_on_uncaught() -> None:
    """An exception that ends the script on one rank would leave the others
    waiting in a collective (MPI_Finalize does not end them): once it is
    printed, abort the job, as ``python -m mpi4py`` does."""
    previous = sys.excepthook

    def hook(kind: Any, value: Any, tb: Any) -> None:
        previous(kind, value, tb)
        _abort(f"rank {_comm.Get_rank()} of {_comm.Get_size()} ended with an uncaught "
               f"{kind.__name__}", "")

    sys.excepthook = hook


_ABORT_GRACE = 0.5   # seconds for mpiexec to forward the failing rank's last words


def _abort(what: str, detail: str) -> None:
    """Prints what happened (naming the rank) and ends every rank of the job."""
    try:
        sys.stdout.flush()
        sys.stderr.write(f"rnnpy.distributed: {what}; aborting the job\n{detail}")
        sys.stderr.flush()
        # the message is in the pipe, but mpiexec forwards it asynchronously and
        # drops what it has not read when MPI_Abort kills the job: give it time
        time.sleep(_ABORT_GRACE)
    finally:
        _comm.Abort(1)
        os._exit(1)   # MPI_Abort may return before mpiexec ends this process


def _world() -> Any:
    init()
    return _comm


def rank() -> int:
    """This process's rank, 0 .. world_size()-1."""
    return int(_world().Get_rank())


def world_size() -> int:
    """Number of ranks in the job."""
    return int(_world().Get_size())


def is_main() -> bool:
    """Whether this is rank 0, the one that prints and writes files."""
    return rank() == 0


def barrier() -> None:
    """Returns once every rank has called it."""
    _world().Barrier()


def broadcast(obj: Any, root: int = 0) -> Any:
    """A small Python object (a seed, a number) from root to every rank."""
    return _world().bcast(obj, root=root)


def _check_same_model(model: Any) -> None:
    """Every rank must hold a model of the same size and dtype: a mismatch
    would turn the collectives into garbage or a hang."""
    mine = (int(model.flat_params.size), str(model.flat_params.dtype))
    everyone = _world().allgather(mine)
    for r, theirs in enumerate(everyone):
        if theirs != mine:
            raise ValueError(f"model: rank {rank()} has {mine[0]} {mine[1]} parameters but rank "
                             f"{r} has {theirs[0]} {theirs[1]}; every rank must build the same model")


def broadcast_parameters(model: Any, root: int = 0) -> None:
    """Copies root's flat_params (num_params,) into every rank's model (in place)."""
    _check_same_model(model)
    _world().Bcast(model.flat_params, root=root)


def _sum_in_rank_order(rows: np.ndarray, out: np.ndarray) -> None:
    """out = rows[0] + rows[1] + ... + rows[p-1], left to right: the same bits
    on every rank, whatever MPI's algorithms."""
    if rows.shape[0] == 1:
        out[...] = rows[0]
        return
    np.add(rows[0], rows[1], out=out)
    for r in range(2, rows.shape[0]):
        out += rows[r]


def allreduce_gradients(model: Any, average: bool = True, method: Optional[str] = None) -> None:
    """Replaces model.flat_grads (num_params,) by its sum over ranks (divided by
    world_size() when average), in place, in a fixed order: every rank gets
    the same bits, and a run on p ranks is reproducible.

    One exchange per step over the one flat buffer. method:
      "allgather": every rank receives every gradient ((p-1) x bytes in) and
          sums them in rank order;
      "alltoall": an Alltoallv gives rank k slice k of every gradient, which
          it sums in rank order, and an Allgatherv shares the summed slices
          (2 (p-1)/p x bytes, 2 (p-1) messages: a ring allreduce's costs);
          identical bits to "allgather";
      "halving": for a power-of-two p, recursive halving (log2 p exchanges of
          half, a quarter, ... of the buffer with rank r ^ 2^k, summing the
          half kept) then the Allgatherv: the same bytes in 2 log2 p messages;
          the sum is the fixed pairwise tree ((g0 + g_{p/2}) + ...).
    By default "halving" for powers of two (for p = 2 it is rank order too, and
    the fastest form measured), else "alltoall".
    """
    if method not in (None, "allgather", "alltoall", "halving"):
        raise ValueError(f"method: expected None, 'allgather', 'alltoall' or 'halving', "
                         f"got {method!r}")
    comm = _world()
    g = model.flat_grads
    p = comm.Get_size()
    if method == "halving" and p & (p - 1):
        raise ValueError(f"method: 'halving' needs a power-of-two number of ranks, got {p}")
    if p == 1:
        return
    if method is None:
        method = "alltoall" if p & (p - 1) else "halving"
    # slice k of the buffer (shard_range's blocks) is summed by rank k
    bounds = [shard_range(g.size, p, k) for k in range(p)]
    counts = [b - a for a, b in bounds]
    starts = [a for a, _ in bounds]
    me = comm.Get_rank()
    if method == "allgather":
        rows = np.empty((p, g.size), dtype=g.dtype)
        comm.Allgather(g, rows)
        _sum_in_rank_order(rows, g)
        if average:
            g /= p
        return
    if method == "alltoall":
        recv = np.empty((p, counts[me]), dtype=g.dtype)   # recv[r]: rank r's copy of my slice
        comm.Alltoallv([g, (counts, starts)],
                       [recv, ([counts[me]] * p, [counts[me] * r for r in range(p)])])
        _sum_in_rank_order(recv, g[bounds[me][0]:bounds[me][1]])
    else:
        lo, hi = 0, p                                   # the slices this rank still sums
        tmp = np.empty(max(bounds[p // 2 - 1][1], g.size - bounds[p // 2][0]), dtype=g.dtype)
        half = p // 2
        while half:
            mid = (lo + hi) // 2
            keep, give = ((mid, hi), (lo, mid)) if me & half else ((lo, mid), (mid, hi))
            k0, k1 = bounds[keep[0]][0], bounds[keep[1] - 1][1]
            s0, s1 = bounds[give[0]][0], bounds[give[1] - 1][1]
            buf = tmp[:k1 - k0]
            comm.Sendrecv(g[s0:s1], dest=me ^ half, recvbuf=buf, source=me ^ half)
            g[k0:k1] += buf                             # a + b == b + a: the pair agrees
            lo, hi = keep
            half //= 2
    comm.Allgatherv(_MPI.IN_PLACE, [g, (counts, starts)])   # every summed slice, in place
    if average:
        g /= p


def native_allreduce(buf: np.ndarray) -> None:
    """MPI's own Allreduce(SUM) in place (its order is the library's choice);
    for comparing costs, not used in training."""
    _world().Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)


def shard_range(n: int, size: Optional[int] = None, index: Optional[int] = None) -> Tuple[int, int]:
    """Rows [start, stop) of a global batch of n rows held by rank ``index``
    of ``size`` (this rank of the job by default): contiguous blocks, the
    first n % size ranks one row more (np.array_split's rule)."""
    size = world_size() if size is None else int(size)
    index = rank() if index is None else int(index)
    base, extra = divmod(int(n), size)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def _take(a: Any, start: int, stop: int) -> Any:
    return None if a is None else np.asarray(a)[start:stop]


class Shard:
    """This rank's part of one global batch of n rows.

    A rank whose block is empty (n < world size) runs the batch's last row
    with weight 0, so that it still takes part in the step's collective.
    position_weights: None, or the weight of every position of the global
    batch (n, ...) (targets' shape) when the loss divides by their sum (a
    class-weighted loss) rather than by their count."""

    def __init__(self, n: int, lengths: Any, p: int, r: int,
                 position_weights: Any = None) -> None:
        self.n, self.p, self.r = n, p, r
        self.position_weights = None if position_weights is None else \
            np.asarray(position_weights, dtype=np.float64)
        self.loss_factor = 1.0   # set by weigh
        self.bounds = [shard_range(n, p, k) for k in range(p)]
        self.start, self.stop = self.bounds[r]
        self.empty = self.start == self.stop
        if self.empty:
            self.start, self.stop = n - 1, n
        self.lengths = None if lengths is None else np.asarray(lengths)

    def take(self, x: Any, y: Any, lengths: Any) -> Tuple[Any, Any, Any]:
        """This rank's rows of x, y and lengths."""
        return _take(x, self.start, self.stop), _take(y, self.start, self.stop), \
            _take(lengths, self.start, self.stop)

    def weigh(self, grad: np.ndarray, mask: Any, T: int) -> Tuple[float, np.ndarray]:
        """(this rank's share of the global batch in rows, grad scaled by its
        share of the loss's positions).

        The losses average over their (unmasked) positions, so the global
        batch's gradient is sum_r (w_r / W) * grad_r, with w_r the positions
        rank r averaged over and W their total: every rank can count them all
        from the global lengths. Scaling d loss/d out before backward (which is
        linear in it) makes the summed parameter gradients the global batch's."""
        if mask is not None and self.lengths is not None:
            per_row = np.clip(self.lengths.astype(np.int64), 0, T)
            weights = [int(per_row[a:b].sum()) for a, b in self.bounds]
        else:
            weights = [b - a for a, b in self.bounds]
        total = sum(weights)
        mine = 0 if self.empty else weights[self.r]
        share = mine / total if total else 0.0
        rows = self.n * mine / total if total else 0.0
        self.loss_factor = 1.0
        if self.position_weights is not None:
            # the loss's share is by the positions' weights; the metrics' stays by
            # positions, so the loss value (summed as value x rows) is rescaled
            pw = self.position_weights
            if mask is not None and self.lengths is not None and pw.ndim >= 2:
                keep = np.arange(pw.shape[1])[None, :] < self.lengths.astype(np.int64)[:, None]
                pw = pw * keep.reshape(keep.shape + (1,) * (pw.ndim - 2))
            per_row_w = pw.reshape(self.n, -1).sum(axis=1)
            loss_weights = [float(per_row_w[a:b].sum()) for a, b in self.bounds]
            loss_total = sum(loss_weights)
            loss_share = 0.0 if self.empty or not loss_total else loss_weights[self.r] / loss_total
            self.loss_factor = loss_share / share if share else 0.0
            share = loss_share
        return rows, grad * np.asarray(share, dtype=grad.dtype)


class Session:
    """What fit, evaluate and predict need from MPI for one call."""

    def __init__(self) -> None:
        global _announced
        init()
        self.rank, self.size = rank(), world_size()
        self.is_main = self.rank == 0
        if self.size > 1 and not _announced:
            # a rank killed by a signal cannot say who it was, and mpiexec names
            # only its process id: this line maps those ids to ranks
            _announced = True
            where = _world().allgather((os.getpid(), socket.gethostname()))
            if self.is_main:
                sys.stderr.write(f"rnnpy.distributed: {self.size} ranks: " + ", ".join(
                    f"rank {r} pid {pid} on {host}" for r, (pid, host) in enumerate(where)) + "\n")
                sys.stderr.flush()

    def shard(self, n: int, lengths: Any, position_weights: Any = None) -> Shard:
        """This rank's part of a global batch of n rows (see Shard)."""
        return Shard(n, lengths, self.size, self.rank, position_weights)

    def start(self, model: Any, seed: Any) -> Any:
        """Rank 0's parameters and shuffling seed on every rank; returns the seed."""
        broadcast_parameters(model)
        return broadcast(seed)

    def begin_epoch(self, model: Any, seed: int, epoch: int) -> None:
        """Fresh random generators (dropout, zoneout) for the epoch, derived from
        (seed, epoch, rank, generator): each rank draws its own masks, and a
        run resumed at an epoch on as many ranks draws what it would have."""
        for k, (_, owner) in enumerate(sorted(model._rng_owners("").items())):
            owner._rng = np.random.default_rng([int(seed), int(epoch), self.rank, k])

    def allreduce_gradients(self, model: Any) -> None:
        """The step's gradient: the sum of every rank's weighted one."""
        allreduce_gradients(model, average=False)

    def reduce_meter(self, meter: Any) -> None:
        """Sums every rank's running sums and counts (in rank order) into meter."""
        everyone: List[Tuple[Dict[str, float], float]] = _world().allgather(
            (dict(meter.sums), float(meter.count)))
        sums = {k: 0.0 for k in meter.sums}
        count = 0.0
        for s, c in everyone:
            for k in sums:
                sums[k] += s[k]
            count += c
        meter.sums = sums
        meter.count = int(round(count)) if abs(count - round(count)) < 1e-6 * max(1.0, count) \
            else count

    def allgather(self, obj: Any) -> List[Any]:
        """Every rank's obj (small Python objects), in rank order, on every rank."""
        return list(_world().allgather(obj))

    def gather_rows(self, parts: List[np.ndarray], bounds: List[List[Tuple[int, int]]]) -> np.ndarray:
        """predict's outputs: parts[k] is this rank's rows of chunk k; returns
        every chunk's rows from every rank, in order, on every rank."""
        everyone = _world().allgather(parts)
        out = []
        for k, chunk_bounds in enumerate(bounds):
            for r, (a, b) in enumerate(chunk_bounds):
                if b > a:
                    out.append(everyone[r][k])
        return np.concatenate(out, axis=0)


def abort_on_error(fn: F) -> F:
    """Wraps fit/evaluate/predict: with distributed=True in a job of more than
    one rank, an exception prints its traceback naming the rank and ends the
    whole job (MPI_Abort, exit code 1) instead of leaving the other ranks
    waiting in a collective. Without distribution, or on one rank, exceptions
    propagate as usual."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("distributed"):
            return fn(*args, **kwargs)
        init()
        if world_size() == 1:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure must end the job
            _abort(f"rank {rank()} of {world_size()} failed in {fn.__name__}",
                   "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    return wrapper  # type: ignore[return-value]
