"""What many test files share: the list of cell kinds, seeded generators,
the relative-error metric, the PyTorch runner and the table of largest
errors that parity tests print at the end of their module.

Import it as `import helpers` (tests/ is on sys.path through conftest.py).
"""
import os
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

from torch_ext import torch_ext_stack

from rnnpy import cells


TESTS = os.path.dirname(os.path.abspath(__file__))   # the folder of this file and conftest.py
ROOT = os.path.dirname(TESTS)                        # the repository


# ---------------------------------------------------------------------------
# cell kinds: rnnpy.cells as the tests use it

@dataclass(frozen=True)
class CellKind:
    """One recurrent cell kind (an entry of rnnpy.cells) as the tests see it.

    mode: the reference's name (rnnpy._reference.MODES); layer: the rnnpy
    class name and its extra keyword arguments; gates: G; lstm: has a cell
    state c; ext: the extended reference's kind (rnnpy._reference_ext.EXT_KINDS)
    and whether it is the relu RNN; torch: torch.nn class name, None when
    torch has no such cell; options: the extended options it takes."""
    mode: str
    layer: str
    kwargs: dict = field(default_factory=dict)
    gates: int = 1
    lstm: bool = False
    ext: str = "rnn"
    relu: bool = False
    torch: str = None
    options: tuple = ()


def _from_registry(k):
    ext_options = tuple(o for o in k.family.options + ("zoneout", "recurrent_dropout")
                        if not k.options.get(o))
    return CellKind(k.reference, k.layer, dict(k.options), k.gates, k.family.has_cell_state,
                    k.family.name, k.options.get("nonlinearity") == "relu", k.torch_class,
                    ext_options)


# reference mode ("LSTM_PEEPHOLE") -> CellKind, read from rnnpy's registry of cells
CELL_KINDS = {k.reference: _from_registry(k) for k in cells.kinds()}
MODES = list(CELL_KINDS)
IS_LSTM = {m for m, k in CELL_KINDS.items() if k.lstm}
GATES = {m: k.gates for m, k in CELL_KINDS.items()}


def make_layer(mode, I, H, **kw):
    """The rnnpy layer of a cell kind: make_layer("RNN_RELU", 3, 5, dtype=...)."""
    import rnnpy
    kind = CELL_KINDS[mode]
    return getattr(rnnpy, kind.layer)(I, H, **dict(kind.kwargs, **kw))


# ---------------------------------------------------------------------------
# numbers

def seeded(*key):
    """A generator seeded by a stable hash of key (any repr-able values), so
    each parametrized case draws its own values, the same on every run."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def rel_err(a, b):
    """max|a - b| / max|b|, b the trusted side; inf when a is not finite,
    0 for empty arrays, and when b is all zeros a must be exactly zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return np.inf
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(np.float64).tiny))


class ModuleReport:
    """Lines a module prints when its last test has run (conftest.py prints
    every module-level ModuleReport that has rows; run with -s or read the
    teardown output). Printing never depends on which tests ran or in what order."""

    def __init__(self, title):
        self.title = title
        self.rows = {}

    def add(self, key, text):
        self.rows[key] = text

    def lines(self):
        return ["", self.title] + [f"  {text}" for _, text in sorted(self.rows.items())]


class ErrorTable(ModuleReport):
    """Largest error per key over a module's tests; record() keeps the worst
    value and a note."""

    def record(self, key, err, note=""):
        key = key if isinstance(key, tuple) else (key,)
        old = self.rows.get(key)
        if old is None or err > old[0]:
            self.rows[key] = (float(err), note)

    def lines(self):
        out = ["", self.title]
        for key, (err, note) in sorted(self.rows.items()):
            out.append("  " + "  ".join(f"{k!s:<16}" for k in key) + f"{err:10.2e}  {note}")
        return out


# ---------------------------------------------------------------------------
# PyTorch

def import_torch():
    """torch with one thread, or a skip (conftest.py turns a skip into an
    error when RNNPY_REQUIRE_TORCH=1). The sanitized build never loads torch."""
    if os.environ.get("RNNPY_SANITIZED"):
        pytest.skip("torch is not loaded into the sanitized build (tests/sanitize/run.sh)")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def torch_stack(mode, params, x, h0, c0, lengths, L, bidirectional, batch_first,
                dout, dh, dc=None):
    """A stack in torch, float64 with autograd, on NumPy values; loss =
    <out, dout> + <hn, dh> (+ <cn, dc>), then backward.

    mode: a CELL_KINDS key; params under PyTorch names; lengths None or all
    >= 1 (torch cannot pack length 0). torch.nn runs the cells it has, the
    peephole LSTM runs through tests/torch_ext.py.
    Returns a dict of NumPy arrays: out, hn, dx, dh0, grads (by name) and
    for LSTM modes cn, dc0.
    """
    torch = import_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def t64(a, grad=False):
        return torch.tensor(np.asarray(a, dtype=np.float64)).requires_grad_(grad)

    kind = CELL_KINDS[mode]
    D = 2 if bidirectional else 1
    T = x.shape[1] if batch_first else x.shape[0]
    B = x.shape[0] if batch_first else x.shape[1]
    I = x.shape[2]
    H = np.asarray(params["weight_hh_l0"]).shape[0] // kind.gates
    xt, h0t = t64(x, True), t64(h0, True)
    c0t = t64(c0, True) if kind.lstm else None
    if kind.torch is None:
        pt = {k: t64(v, True) for k, v in params.items()}
        inp = xt.transpose(0, 1) if batch_first else xt
        lens = np.full(B, T) if lengths is None else np.asarray(lengths)
        mask = torch.tensor(np.arange(T)[:, None, None] < lens[None, :, None])
        out, hn, cn = torch_ext_stack(torch, kind.ext, pt, inp, h0t, c0t, mask, L, D,
                                      [{}] * (L * D), relu=kind.relu)
        out = out.transpose(0, 1) if batch_first else out
        named = pt
    else:
        kw = {}
        if kind.layer == "RNN":
            kw["nonlinearity"] = "relu" if kind.relu else "tanh"
        if "weight_hr_l0" in params:
            kw["proj_size"] = np.asarray(params["weight_hr_l0"]).shape[0]
        mod = getattr(torch.nn, kind.torch)(I, H, num_layers=L, bidirectional=bidirectional,
                                            batch_first=batch_first, dtype=torch.float64, **kw)
        mod.load_state_dict({k: torch.tensor(np.asarray(v, np.float64)) for k, v in params.items()})
        hx = (h0t, c0t) if kind.lstm else h0t
        if lengths is None:
            out, st = mod(xt, hx)
        else:
            packed = pack_padded_sequence(xt, torch.tensor(np.asarray(lengths, np.int64)),
                                          batch_first=batch_first, enforce_sorted=False)
            out_p, st = mod(packed, hx)
            out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=T)
        hn, cn = st if kind.lstm else (st, None)
        named = dict(mod.named_parameters())
    loss = (out * t64(dout)).sum() + (hn * t64(dh)).sum()
    if kind.lstm and dc is not None:
        loss = loss + (cn * t64(dc)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "hn": hn.detach().numpy(), "cn": None,
           "dx": xt.grad.numpy(), "dh0": h0t.grad.numpy(), "dc0": None,
           "grads": {k: v.grad.numpy() for k, v in named.items()}}
    if kind.lstm:
        res["cn"] = cn.detach().numpy()
        res["dc0"] = c0t.grad.numpy()
    return res


# ---------------------------------------------------------------------------
# finite differences and threads

def numeric_grad(f, x, eps=1e-6, indices=None):
    """Central differences of the scalar f(x) with respect to x (an array
    changed in place and restored), at every flat index or at `indices`.
    Returns an array like x (zero where not evaluated)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous"
    for j in (range(flat.size) if indices is None else indices):
        old = flat[j]
        flat[j] = old + eps
        up = f(x)
        flat[j] = old - eps
        down = f(x)
        flat[j] = old
        gflat[j] = (up - down) / (2 * eps)
    return g


def run_threads(target, args_list):
    """Runs target(*args) in one thread per args, joins them all and fails
    with the errors any of them raised."""
    import threading
    errors = []

    def work(*args):
        try:
            target(*args)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def poll_while(work, poll):
    """Runs work() in a thread and poll() in this one, over and over, until
    work returns; then fails with work's error if it raised. Returns how many
    polls ran."""
    import threading
    done = threading.Event()
    errors = []

    def run():
        try:
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=run)
    t.start()
    polls = 0
    try:
        while not done.is_set():
            poll()
            polls += 1
    finally:
        done.set()
        t.join()
    assert not errors, errors
    return polls


def env_with_this_rnnpy(env=None):
    """os.environ (or env) with PYTHONPATH starting at the folder of the rnnpy
    this process imported, so that a child running a script (whose own folder
    comes first on its path) uses the same rnnpy, not an installed one."""
    import rnnpy
    env = dict(os.environ if env is None else env)
    here = os.path.dirname(os.path.dirname(os.path.abspath(rnnpy.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
