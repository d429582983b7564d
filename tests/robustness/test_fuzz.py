"""Property-based fuzzing of the C types and the layers: random shapes,
dtypes, strides, alignments and values, hostile ones included.

Each case either returns the NumPy reference's result (forward and backward,
rnnpy._reference) or raises TypeError/ValueError whose message names an
argument that really is wrong and says what was expected; a valid call that
raises, an invalid call that returns, or a crash all fail.

Crash isolation: the examples run in a child interpreter (this file run as a
script), which writes each case to a file before running it, so a segfault
fails the test with the case that caused it instead of killing the test run.
A case is a small JSON description; rebuild and rerun one with

    python tests/robustness/test_fuzz.py replay <target> '<case json>'

RNNPY_FUZZ_SCALE multiplies the number of examples (CI runs 1x),
RNNPY_FUZZ_SEED picks a seed instead of the fixed (derandomized) sequence.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = HERE                       # the folder of the shared conftest.py and helpers.py
while not os.path.exists(os.path.join(TESTS, "helpers.py")):
    TESTS = os.path.dirname(TESTS)
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)          # the child runs this file as a script
import helpers  # noqa: E402

EXAMPLES = {"cells": 700, "layers": 400, "gemm": 300}

# ------------------------------------------------------------------ the parent


def run_child(target, examples, timeout=300):
    """Runs `examples` cases of target in a child; returns how many ran.
    Fails with the last case when the child dies of a signal."""
    with tempfile.NamedTemporaryFile("w+", suffix=".case", delete=False) as f:
        casefile = f.name
    env = helpers.env_with_this_rnnpy()   # not whichever rnnpy is installed
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), target, str(examples),
                               casefile], capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=env)
        with open(casefile) as f:
            last = f.read()
    finally:
        os.unlink(casefile)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise AssertionError(f"{target}: the child died of {name} while running case {last}\n"
                             f"replay: python tests/robustness/test_fuzz.py replay {target} '{last}'\n"
                             + proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ran ")]
    assert ran, proc.stdout[-2000:]
    print(ran[-1])
    return int(ran[-1].split()[1]), ran[-1]


def _scale():
    return float(os.environ.get("RNNPY_FUZZ_SCALE", "1"))


def _fuzz(target):
    n = int(EXAMPLES[target] * _scale())
    ran, summary = run_child(target, n)
    assert ran >= n * 0.9, summary
    # both sides were exercised: results checked against the reference, and refusals
    counts = {k: int(v) for v, k in re.findall(r"(\d+) ([a-z (),-]+?)(?:,|$)", summary.split(": ", 1)[1])}
    assert counts.get("checked", 0) >= n // 8, summary
    assert counts.get("refused", 0) >= n // 10, summary


def test_fuzz_core_cells():
    _fuzz("cells")


def test_fuzz_layers():
    _fuzz("layers")


def test_fuzz_gemm():
    _fuzz("gemm")


def test_a_crash_in_the_child_fails_with_its_case():
    """The isolation itself: a child that segfaults on its third case gives
    a failure naming the signal and that case, not a dead test run."""
    try:
        run_child("selftest_crash", 10)
    except AssertionError as exc:
        msg = str(exc)
        # SIGSEGV, or SIGABRT when AddressSanitizer catches the fault first
        assert ("SIGSEGV" in msg or "SIGABRT" in msg) and '"index": 2' in msg, msg
    else:
        raise AssertionError("the crash went unnoticed")


def test_a_wrong_result_in_the_child_fails():
    try:
        run_child("selftest_wrong", 10)
    except AssertionError as exc:
        assert "wrong result" in str(exc)
    else:
        raise AssertionError("the wrong result went unnoticed")


# ------------------------------------------------------------ building a case
# A case is JSON: for every argument, how to build it (shape, dtype, memory
# layout, value regime, seed). build_array() turns a description into the
# object passed to rnnpy; the oracle below decides whether it is valid.

DTYPES = ["float32", "float64", "float16", "int32", "int64", "uint8", "bool", "complex128",
          "object", "list", "intlist"]
LAYOUTS = ["C", "F", "strided", "negative", "transposed", "broadcast", "unaligned", "readonly"]
REGIMES = ["normal", "normal", "normal", "large", "tiny", "nan", "inf", "f32overflow"]


def build_array(desc):
    """desc: {"shape", "dtype", "layout", "regime", "seed"} -> ndarray or list."""
    shape = tuple(desc["shape"])
    rng = np.random.default_rng(desc["seed"])
    v = rng.standard_normal(shape)
    regime = desc["regime"]
    if regime == "large":
        v *= 1e3
    elif regime == "tiny":
        v *= 1e-300
    elif v.size and regime in ("nan", "inf", "f32overflow"):
        v.flat[rng.integers(v.size)] = {"nan": np.nan, "inf": -np.inf, "f32overflow": 1e39}[regime]
    dt = desc["dtype"]
    if dt == "list":
        return v.tolist()
    if dt == "intlist":
        return np.nan_to_num(np.round(v * 3), posinf=7, neginf=-7).astype(np.int64).tolist()
    if dt in ("int32", "int64", "uint8", "bool"):
        a = np.asarray(np.nan_to_num(np.round(v * 3), posinf=7, neginf=-7).astype(dt))
    else:
        with np.errstate(over="ignore"):
            a = np.asarray(v.astype(dt))
    layout = desc["layout"]
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        a = view
    elif layout == "negative" and a.ndim:
        a = a[(slice(None, None, -1),) * a.ndim].copy()[(slice(None, None, -1),) * a.ndim]
    elif layout == "transposed" and a.ndim > 1:
        a = np.ascontiguousarray(a.T).T
    elif layout == "broadcast" and a.ndim and a.shape[0]:
        a = np.broadcast_to(a[:1], a.shape)
    elif layout == "unaligned" and a.dtype != object and a.itemsize > 1:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        view = buf[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        a = view
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    return a


def array_problem(obj, dtype, shape):
    """None if obj is a valid argument of a `dtype` call expecting `shape`
    (None entries = any size), else why not (for the oracle only)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype not in (np.float32, np.float64):
            return "dtype"
        arr = obj
    else:
        arr = np.asarray(obj)
        if arr.dtype.kind not in "fiu":
            return "dtype"
    if arr.ndim != len(shape) or any(w is not None and w != s for w, s in zip(shape, arr.shape)):
        return "shape"
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.isfinite(arr.astype(dtype)).all():
            return "finite"
    return None


def as_ref(obj, dtype):
    """What the kernel computes on: obj cast to the cell's dtype, in float64."""
    with np.errstate(over="ignore"):
        return np.asarray(obj).astype(dtype).astype(np.float64)


def lengths_value(desc, B, T):
    if desc is None:
        return None
    kind, seed = desc["kind"], desc["seed"]
    rng = np.random.default_rng(seed)
    ok = rng.integers(0, T + 1, B)
    if kind == "list":
        return ok.tolist()
    if kind in ("int32", "uint8", "int64"):
        return ok.astype(kind)
    if kind == "negative":
        ok[rng.integers(B)] = -1
        return ok
    if kind == "too_long":
        ok[rng.integers(B)] = T + 1
        return ok
    if kind == "huge_unsigned":
        u = ok.astype(np.uint64)
        u[rng.integers(B)] = np.iinfo(np.uint64).max
        return u
    if kind == "float":
        return ok.astype(np.float64)
    if kind == "bool":
        return ok > 0
    if kind == "wrong_shape":
        return np.zeros(B + 1, np.int64)
    if kind == "matrix":
        return ok.reshape(1, B)
    if kind == "string":
        return "abc"
    raise AssertionError(kind)


def lengths_problem(value, B, T):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        return "dtype"
    if arr.shape != (B,):
        return "shape"
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > T):
        return "range"
    return None


def check_raises_for(exc, invalid):
    """exc is TypeError/ValueError naming one of the invalid arguments."""
    msg = str(exc)
    assert isinstance(exc, (TypeError, ValueError)), f"unexpected {type(exc).__name__}: {msg}"
    assert any(msg.startswith(name) for name in invalid), \
        f"message names none of {sorted(invalid)}: {msg}"
    assert "expected" in msg, msg


def magnitude(*arrays):
    """The largest input magnitude (at least 1): rounding errors of saturated
    gates scale with it, so tolerances do too."""
    return max([1.0] + [float(np.abs(a).max()) for a in arrays if a is not None and np.size(a)])


def close(actual, expected, dtype, what, mag=1.0):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"wrong result: {what} shape {actual.shape} != {expected.shape}"
    if not expected.size:
        return
    tol = 1e-4 if dtype == "float32" else 1e-9
    scale = max(1.0, float(np.abs(expected).max()), mag)
    err = float(np.abs(actual - expected).max())
    assert err <= tol * scale, f"wrong result: {what} off by {err:.3g} (scale {scale:.3g})"


# ------------------------------------------------------------------ the cells

# kind -> (C type, constructor keywords, gates), from the one list of cells
CELL_KINDS = {
    mode.lower(): (k.layer + "Cell",
                   {"peephole": bool(k.kwargs.get("peephole"))} if k.lstm else dict(k.kwargs),
                   k.gates)
    for mode, k in helpers.CELL_KINDS.items()
}


def judge_x(case, dtype, I, time_major):
    """x built from its description, the set of invalid arguments so far
    ({"x"} or empty) and T, B when x's shape tells them (else None)."""
    x = build_array(case["x"])
    xp = array_problem(x, dtype, (None, None, I))
    if xp is None and 0 in np.shape(x)[:2]:
        xp = "empty"
    invalid = {"x"} if xp else set()
    T = B = None
    if xp in (None, "finite", "empty"):  # B and T are known: judge the others too
        T, B = np.shape(x)[:2] if time_major else (np.shape(x)[1], np.shape(x)[0])
    return x, invalid, T, B


def run_cell_case(case):
    from rnnpy import _core
    from rnnpy import _reference as ref

    kind, dtype, I, H = case["kind"], case["dtype"], case["I"], case["H"]
    cls_name, kw, G = CELL_KINDS[kind]
    lstm = kind.startswith("lstm")
    n = G * H * (I + H + 2) + (3 * H if kind == "lstm_peephole" else 0)
    params = np.random.default_rng(case["pseed"]).uniform(-0.6, 0.6, n).astype(dtype)
    grads = np.zeros(n, dtype)
    cell = getattr(_core, cls_name)(I, H, dtype=dtype, params=params, grads=grads, **kw)
    bf = case["batch_first"]

    x, invalid, T, B = judge_x(case, dtype, I, not bf)
    h0 = build_array(case["h0"]) if case["h0"] else None
    c0 = build_array(case["c0"]) if (lstm and case["c0"]) else None
    lengths = lengths_value(case["lengths"], B or 1, T or 1)
    if B is not None:
        if h0 is not None and array_problem(h0, dtype, (B, H)):
            invalid.add("h0")
        if c0 is not None and array_problem(c0, dtype, (B, H)):
            invalid.add("c0")
        if lengths_problem(lengths, B, T):
            invalid.add("lengths")
    args = (x, h0, c0, lengths) if lstm else (x, h0, lengths)
    try:
        res = cell.forward(*args, reverse=case["reverse"], batch_first=bf)
    except MemoryError:
        return "MemoryError"
    except Exception as exc:
        assert invalid, f"a valid forward raised {type(exc).__name__}: {exc}"
        check_raises_for(exc, invalid)
        assert not grads.any()
        return "refused"
    assert not invalid, f"wrong result: forward accepted invalid {sorted(invalid)}"

    # the reference, time-major, on the values the kernel saw
    names = {name: params[off:off + int(np.prod(shape))].reshape(shape).astype(np.float64)
             for name, off, shape in cell.layout()}
    xr = as_ref(x, dtype)
    if bf:
        xr = xr.transpose(1, 0, 2)
    h0r = np.zeros((B, H)) if h0 is None else as_ref(h0, dtype)
    c0r = np.zeros((B, H)) if c0 is None else as_ref(c0, dtype)
    w = [names["weight_ih"], names["weight_hh"], names["bias_ih"], names["bias_hh"]]
    L = None if lengths is None else np.asarray(lengths).astype(np.int64)
    if kind.startswith("rnn"):
        out_r, h_r, cache = ref.rnn_cell_forward(xr, h0r, *w, nonlinearity=kind[4:], lengths=L,
                                                 reverse=case["reverse"], return_cache=True)
    elif lstm:
        out_r, h_r, c_r, cache = ref.lstm_cell_forward(
            xr, h0r, c0r, *w, w_peep=names.get("weight_peep"), lengths=L,
            reverse=case["reverse"], return_cache=True)
    else:
        out_r, h_r, cache = ref.gru_cell_forward(xr, h0r, *w, lengths=L, reverse=case["reverse"],
                                                 return_cache=True)
    out = res[0].transpose(1, 0, 2) if bf else res[0]
    assert res[0].dtype == dtype
    fmag = magnitude(xr, h0r, c0r)
    close(out, out_r, dtype, "out", fmag)
    close(res[1], h_r, dtype, "hT", fmag)
    if lstm:
        close(res[2], c_r, dtype, "cT", fmag)

    # backward on the same case, with hostile gradients too
    oshape = (B, T, H) if bf else (T, B, H)
    dout = build_array(dict(case["dout"], shape=case["dout"]["shape"] or oshape)) \
        if case["dout"] else None
    dh = build_array(dict(case["dh"], shape=case["dh"]["shape"] or (B, H))) if case["dh"] else None
    binvalid = set()
    if dout is not None and array_problem(dout, dtype, oshape):
        binvalid.add("dout")
    if dh is not None and array_problem(dh, dtype, (B, H)):
        binvalid.add("dhT")
    try:
        back = cell.backward(dout, dh, None) if lstm else cell.backward(dout, dh)
    except MemoryError:
        return "MemoryError"
    except Exception as exc:
        assert binvalid, f"a valid backward raised {type(exc).__name__}: {exc}"
        check_raises_for(exc, binvalid)
        assert not grads.any(), "a refused backward changed grads"
        return "backward refused"
    assert not binvalid, f"wrong result: backward accepted invalid {sorted(binvalid)}"
    doutr = np.zeros((T, B, H)) if dout is None else as_ref(dout, dtype)
    if bf and dout is not None:
        doutr = doutr.transpose(1, 0, 2)
    dhr = None if dh is None else as_ref(dh, dtype)
    if kind.startswith("rnn"):
        dx_r, dh0_r, g_r = ref.rnn_cell_backward(doutr, dhr, cache)
    elif lstm:
        dx_r, dh0_r, _, g_r = ref.lstm_cell_backward(doutr, dhr, None, cache)
    else:
        dx_r, dh0_r, g_r = ref.gru_cell_backward(doutr, dhr, cache)
    bmag = fmag * magnitude(doutr, dhr)
    close(back[0].transpose(1, 0, 2) if bf else back[0], dx_r, dtype, "dx", bmag)
    close(back[1], dh0_r, dtype, "dh0", bmag)
    for name, off, shape in cell.layout():
        close(grads[off:off + int(np.prod(shape))].reshape(shape), g_r[name], dtype, name, bmag)
    return "checked"


# ----------------------------------------------------------------- the layers

def run_layer_case(case):
    import rnnpy
    from rnnpy import _reference as ref

    kind, dtype, I, H = case["kind"], case["dtype"], case["I"], case["H"]
    Lnum, bidir, tm = case["num_layers"], case["bidirectional"], case["time_major"]
    D = 2 if bidir else 1
    common = dict(num_layers=Lnum, bidirectional=bidir, dtype=dtype, seed=case["pseed"],
                  time_major=tm)
    if kind.startswith("rnn"):
        layer, mode = rnnpy.RNN(I, H, nonlinearity=kind[4:], **common), "RNN_" + kind[4:].upper()
    elif kind == "gru":
        layer, mode = rnnpy.GRU(I, H, **common), "GRU"
    else:
        peep = kind == "lstm_peephole"
        layer, mode = rnnpy.LSTM(I, H, peephole=peep, **common), ("LSTM_PEEPHOLE" if peep else "LSTM")
    lstm = mode.startswith("LSTM")
    x, invalid, T, B = judge_x(case, dtype, I, tm)
    sshape = (Lnum * D, B, H)
    h = build_array(case["h0"]) if case["h0"] else None
    c = build_array(case["c0"]) if case["c0"] else None
    state = None
    if h is not None:
        state = (h, c if c is not None else np.zeros(sshape if B else (1,))) if lstm else h
    lengths = lengths_value(case["lengths"], B or 1, T or 1)
    if B is not None:
        if state is not None:
            parts = state if lstm else (state,)
            if any(array_problem(p, dtype, sshape) for p in parts):
                invalid.add("state")
        if lengths_problem(lengths, B, T):
            invalid.add("lengths")
    layer.eval()
    try:
        out, st = layer.forward(x, state, lengths)
    except MemoryError:
        return "MemoryError"
    except Exception as exc:
        assert invalid, f"a valid forward raised {type(exc).__name__}: {exc}"
        check_raises_for(exc, invalid)
        return "refused"
    assert not invalid, f"wrong result: forward accepted invalid {sorted(invalid)}"
    params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    xr = as_ref(x, dtype)
    sr = None
    if state is not None:
        sr = tuple(as_ref(p, dtype) for p in state) if lstm else as_ref(state, dtype)
    L = None if lengths is None else np.asarray(lengths).astype(np.int64)
    out_r, st_r, cache = ref.stack_forward(mode, params, xr, sr, L, num_layers=Lnum,
                                           bidirectional=bidir, batch_first=not tm,
                                           return_cache=True)
    fmag = magnitude(xr, *(sr if lstm and sr is not None else (sr,)))
    close(out, out_r, dtype, "out", fmag)
    for a, b in zip(st if lstm else (st,), st_r if lstm else (st_r,)):
        close(a, b, dtype, "state", fmag)
    dout = np.random.default_rng(case["pseed"] + 1).standard_normal(out.shape)
    if case["dout"]:
        dout = build_array(dict(case["dout"], shape=case["dout"]["shape"] or out.shape))
    if array_problem(dout, dtype, out.shape):
        try:
            layer.backward(dout)
        except Exception as exc:
            check_raises_for(exc, {"dout"})
            assert not layer.flat_grads.any(), "a refused backward changed grads"
            return "backward refused"
        raise AssertionError("wrong result: backward accepted an invalid dout")
    dx, dst = layer.backward(dout)
    dx_r, dst_r, g_r = ref.stack_backward(cache, as_ref(dout, dtype))
    bmag = fmag * magnitude(as_ref(dout, dtype))
    close(dx, dx_r, dtype, "dx", bmag)
    for a, b in zip(dst if lstm else (dst,), dst_r if lstm else (dst_r,)):
        close(a, b, dtype, "dstate", bmag)
    for name, g in layer.grads.items():
        close(g, g_r[name], dtype, name, bmag)
    return "checked"


# ------------------------------------------------------------------- the gemm

def run_gemm_case(case):
    from rnnpy import _core

    a, b = build_array(case["a"]), build_array(case["b"])
    ta, tb = case["trans_a"], case["trans_b"]
    dtype = "float64" if isinstance(a, np.ndarray) and a.dtype == np.float64 else "float32"
    invalid = set()
    for name, m in (("a", a), ("b", b)):
        if array_problem(m, dtype, (None, None)) not in (None, "finite"):
            invalid.add(name)
    if not invalid:
        A = np.asarray(a).T if ta else np.asarray(a)
        Bm = np.asarray(b).T if tb else np.asarray(b)
        if A.shape[1] != Bm.shape[0]:
            invalid.add("b")
    try:
        c = _core.gemm(a, b, trans_a=ta, trans_b=tb, alpha=case["alpha"], isa=case["isa"])
    except MemoryError:
        return "MemoryError"
    except Exception as exc:
        assert invalid, f"a valid gemm raised {type(exc).__name__}: {exc}"
        assert isinstance(exc, (TypeError, ValueError)), exc
        assert any(n in str(exc).split(":")[0] for n in invalid), str(exc)
        assert "expected" in str(exc), str(exc)
        return "refused"
    assert not invalid, f"wrong result: gemm accepted invalid {sorted(invalid)}"
    want = case["alpha"] * (as_ref(A, dtype) @ as_ref(Bm, dtype))
    assert c.dtype == dtype and c.shape == want.shape
    if np.isfinite(want).all() and np.isfinite(as_ref(A, dtype)).all() \
            and np.isfinite(as_ref(Bm, dtype)).all():
        K = max(A.shape[1], 1)
        tol = (1e-5 if dtype == "float32" else 1e-12) * K
        scale = max(1.0, float(np.abs(as_ref(A, dtype)).max(initial=0) * np.abs(as_ref(Bm, dtype)).max(initial=0)))
        err = float(np.abs(c - want).max(initial=0))
        assert err <= tol * scale * abs(case["alpha"]) + tol, f"wrong result: gemm off by {err:.3g}"
        return "checked"
    return "ran (non-finite values)"


# --------------------------------------------------------------- the self-tests

def run_selftest_crash(case):
    if case["index"] == 2:
        import ctypes
        ctypes.string_at(0)   # reads address 0: SIGSEGV
    return "ran"


def run_selftest_wrong(case):
    assert case["index"] < 3, "wrong result: planted"
    return "ran"


RUNNERS = {"cells": run_cell_case, "layers": run_layer_case, "gemm": run_gemm_case,
           "selftest_crash": run_selftest_crash, "selftest_wrong": run_selftest_wrong}


# ------------------------------------------------------------ the strategies

def strategies():
    from hypothesis import strategies as st

    seeds = st.integers(0, 2 ** 32 - 1)
    hostile_dim = st.sampled_from([0, 1, 2, 3, 5])
    any_shape = st.lists(hostile_dim, max_size=4)

    def array_desc(good_shape, bad_shape=any_shape):
        """Three times in four a valid argument (float dtype or a list, finite
        values, any memory layout); else anything at all."""
        valid = st.fixed_dictionaries({
            "shape": good_shape, "dtype": st.sampled_from(["float32", "float64", "list"]),
            "layout": st.sampled_from(LAYOUTS), "regime": st.sampled_from(["normal", "large", "tiny"]),
            "seed": seeds})
        hostile = st.fixed_dictionaries({
            "shape": st.one_of(good_shape, bad_shape), "dtype": st.sampled_from(DTYPES),
            "layout": st.sampled_from(LAYOUTS), "regime": st.sampled_from(REGIMES), "seed": seeds})
        return st.one_of(valid, valid, valid, hostile)

    small = st.integers(1, 4)

    def x_shape(I):
        return st.tuples(small, small, st.just(I)).map(list)

    def state_shape(n_lead, B, H):
        if B is None:
            return any_shape
        return st.just(list(n_lead) + [B, H])

    lengths_kinds = ["list", "int32", "uint8", "int64", "int64", "negative", "too_long",
                     "huge_unsigned", "float", "bool", "wrong_shape", "matrix", "string"]
    lengths = st.one_of(st.none(), st.none(), st.fixed_dictionaries({
        "kind": st.sampled_from(lengths_kinds), "seed": seeds}))

    @st.composite
    def cell_case(draw):
        I, H = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        case = {"kind": draw(st.sampled_from(sorted(CELL_KINDS))),
                "dtype": draw(st.sampled_from(["float32", "float64"])), "I": I, "H": H,
                "pseed": draw(st.integers(0, 2 ** 16)), "batch_first": draw(st.booleans()),
                "reverse": draw(st.booleans())}
        case["x"] = draw(array_desc(x_shape(I)))
        s = case["x"]["shape"]
        B = (s[0] if case["batch_first"] else s[1]) if len(s) == 3 else None
        T = (s[1] if case["batch_first"] else s[0]) if len(s) == 3 else None
        case["h0"] = draw(st.none() | array_desc(state_shape((), B, H)))
        case["c0"] = draw(st.none() | array_desc(state_shape((), B, H)))
        case["lengths"] = draw(lengths)
        case["dout"] = draw(st.none() | array_desc(st.none()))
        case["dh"] = draw(st.none() | array_desc(st.none()))
        del T
        return case

    @st.composite
    def layer_case(draw):
        I, H = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        case = {"kind": draw(st.sampled_from(sorted(CELL_KINDS))),
                "dtype": draw(st.sampled_from(["float32", "float64"])), "I": I, "H": H,
                "pseed": draw(st.integers(0, 2 ** 16)), "num_layers": draw(st.integers(1, 3)),
                "bidirectional": draw(st.booleans()), "time_major": draw(st.booleans())}
        case["x"] = draw(array_desc(x_shape(I)))
        s = case["x"]["shape"]
        B = (s[1] if case["time_major"] else s[0]) if len(s) == 3 else None
        LD = case["num_layers"] * (2 if case["bidirectional"] else 1)
        case["h0"] = draw(st.none() | array_desc(state_shape((LD,), B, H)))
        case["c0"] = draw(st.none() | array_desc(state_shape((LD,), B, H)))
        case["lengths"] = draw(lengths)
        case["dout"] = draw(st.none() | array_desc(st.none()))
        return case

    @st.composite
    def gemm_case(draw):
        M, N, K = (draw(st.integers(0, 40)) for _ in range(3))
        ta, tb = draw(st.booleans()), draw(st.booleans())
        ashape = [K, M] if ta else [M, K]
        bshape = [N, K] if tb else [K, N]
        bad = st.lists(st.integers(0, 5), max_size=3)
        return {"a": draw(array_desc(st.just(ashape), bad)),
                "b": draw(array_desc(st.just(bshape), bad)),
                "trans_a": ta, "trans_b": tb,
                "alpha": draw(st.sampled_from([1.0, -0.5, 2.0])),
                "isa": draw(st.sampled_from([None, "generic", "reference"]))}

    @st.composite
    def index_case(draw):
        return {"index": draw(st.integers(0, 10 ** 9))}

    return {"cells": cell_case(), "layers": layer_case(), "gemm": gemm_case(),
            "selftest_crash": index_case(), "selftest_wrong": index_case()}


def child_main(target, examples, casefile):
    import warnings

    from hypothesis import HealthCheck, given, seed, settings

    # hostile values overflow in casts on purpose
    warnings.simplefilter("ignore", RuntimeWarning)

    runner = RUNNERS[target]
    count = [0]
    outcomes = {}
    out = open(casefile, "w")

    def log(case):
        out.seek(0)
        out.write(json.dumps(case))
        out.truncate()
        out.flush()

    env_seed = os.environ.get("RNNPY_FUZZ_SEED")

    @settings(max_examples=examples, deadline=None, database=None, derandomize=env_seed is None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategies()[target])
    def fuzz(case):
        if target.startswith("selftest"):
            case = {"index": count[0]}
        log(case)
        count[0] += 1
        outcome = runner(case)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    if env_seed is not None:
        fuzz = seed(int(env_seed))(fuzz)
    fuzz()
    print(f"ran {count[0]} examples of {target}: "
          + ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items())), flush=True)


if __name__ == "__main__":
    sys.path.append(ROOT)   # a fallback: the installed (or PYTHONPATH) rnnpy comes first
    if sys.argv[1] == "replay":
        RUNNERS[sys.argv[2]](json.loads(sys.argv[3]))
        print("case passed")
    else:
        child_main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
