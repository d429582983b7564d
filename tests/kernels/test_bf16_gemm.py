"""The bfloat16 product (``rnnpy._core.gemm_bf16``, csrc/gemm_bf16.c) against
NumPy in float64, on every micro-kernel this CPU has.

Two references per product:
- the exact product of the float32 inputs, within the bound derived in
  csrc/bf16.h (bf16 rounding of both inputs, 2u + u^2 with u = 2^-8, plus the
  float32 summation term);
- the exact product of the inputs rounded to bfloat16 here in NumPy (round
  to nearest even, subnormals to signed zero, NaN quiet), within the float32
  summation term alone: this pins the kernels' rounding of the inputs.
Each test runs on every micro-kernel this CPU has (the portable one runs
everywhere); that list is checked against the CPU's own flags, so a kernel
the CPU has cannot go untested by being reported missing.
"""
import math

import numpy as np
import pytest

from rnnpy import _core

KC = 256  # RNN_BF16_KC in csrc/bf16.h: depth of the K slices
U = 2.0 ** -8  # unit roundoff of bfloat16's 8-bit significand
V = 2.0 ** -24  # float32's

# this CPU's kernels, best first: a kernel it lacks cannot run here, so it is
# left out rather than skipped (test_the_kernels_are_those_the_cpu_has checks
# the list against the CPU's flags)
ISAS = _core.bf16_isas()

# what each kernel needs, in the names of Linux's /proc/cpuinfo flags (the
# checks of rnn_bf16_isa_supported, csrc/gemm_bf16.c); AMX also needs the OS
# to grant the process tile data
_BF16_AVX512 = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "fma"})
BF16_ISA_FLAGS = {"amx": _BF16_AVX512 | {"amx_tile", "amx_bf16"},
                  "avx512_bf16": _BF16_AVX512, "generic": frozenset()}


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (a set of names), or None
    where there is no such file (not Linux) or it lists no flags (not x86)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 (any shape) -> the float32 values of its bfloat16 rounding:
    nearest even, subnormals to a zero of the same sign, NaN made quiet."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    sub = (u & 0x7F800000) == 0
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    r = np.where(nan, (u >> 16) | 0x40, r)
    r = np.where(sub, (u >> 16) & 0x8000, r)
    return (r.astype(np.uint32) << 16).view(np.float32).reshape(np.shape(x))


def rounds(k: int) -> float:
    """n of the bound: roundings on any term's path for depth k."""
    return k + 2 * math.ceil(k / KC) + 2


def gamma(n: float) -> float:
    return n * V / (1 - n * V)


def check_product(isa, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None,
                  prepack=False):
    """Runs gemm_bf16 and asserts both bounds; returns the result."""
    c0 = None if c is None else c.copy()
    got = _core.gemm_bf16(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                          c=c, isa=isa, prepack=prepack)
    assert got.dtype == np.float32
    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    ra, rb = to_bf16(a.T if trans_a else a).astype(np.float64), to_bf16(
        b.T if trans_b else b).astype(np.float64)
    k = opa.shape[1]
    cterm = 0.0 if c0 is None or beta == 0 else beta * c0.astype(np.float64)
    exact = alpha * (opa @ opb) + cterm
    exact_r = alpha * (ra @ rb) + cterm
    s = np.abs(opa) @ np.abs(opb)
    s_r = np.abs(ra) @ np.abs(rb)
    n = rounds(k)
    tiny = abs(alpha) * (n + 1) * 2.0 ** -126 * max(1, np.abs(opa).max()) * max(1, np.abs(opb).max())
    bound = (abs(alpha) * (2 * U + U * U) * s
             + gamma(n) * (abs(alpha) * (1 + 2 * U + U * U) * s + np.abs(cterm)) + tiny)
    bound_r = gamma(n) * (abs(alpha) * s_r + np.abs(cterm)) + tiny
    err = np.abs(got - exact)
    err_r = np.abs(got - exact_r)
    assert np.all(err <= bound * (1 + 1e-9)), f"{isa}: error {(err / bound).max():.3f} x the bound"
    assert np.all(err_r <= bound_r * (1 + 1e-9)), \
        f"{isa}: {(err_r / bound_r).max():.3f} x the summation bound on rounded inputs"
    return got


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (45, 77, 1), (1, 77, 45), (33, 47, 65),
                                   (31, 17, 300), (130, 70, 513), (64, 1024, 256), (1, 100, 513),
                                   (17, 64, 300)])
def test_product_within_bound(isa, trans_a, trans_b, shape):
    rng = np.random.default_rng(sum(shape) + 2 * trans_a + trans_b)
    m, n, k = shape
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(np.float32)
    got = check_product(isa, a, b, trans_a, trans_b)
    if k >= 65:
        # the inputs really were rounded: a float32 product would be ~1e-7 off
        exact = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
        assert np.abs(got - exact).max() > 1e-4


@pytest.mark.parametrize("isa", ISAS)
def test_alpha_beta_and_prepack(isa):
    rng = np.random.default_rng(7)
    a = rng.uniform(-1, 1, (37, 300)).astype(np.float32)
    w = rng.uniform(-1, 1, (100, 300)).astype(np.float32)  # op(b) = w^T, as x W^T
    c = rng.uniform(-1, 1, (37, 100)).astype(np.float32)
    got = check_product(isa, a, w, trans_b=True, alpha=-0.5, beta=1.5, c=c.copy())
    packed = check_product(isa, a, w, trans_b=True, alpha=-0.5, beta=1.5, c=c.copy(), prepack=True)
    assert np.array_equal(got, packed)  # the pre-packed B gives the same bits
    # beta = 0 never reads c: NaN there does not propagate
    out = check_product(isa, a, w, trans_b=True, c=np.full((37, 100), np.nan, np.float32))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(37, 100, 300), (32, 64, 600), (1, 100, 513)])
def test_accumulate_into_c(isa, shape):
    # alpha = beta = 1: every slice's sums go on from C, whole tiles and partial ones
    rng = np.random.default_rng(sum(shape))
    m, n, k = shape
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    got = check_product(isa, a, b, beta=1.0, c=c.copy())
    assert np.array_equal(got, check_product(isa, a, b, beta=1.0, c=c.copy(), prepack=True))


@pytest.mark.parametrize("isa", ISAS)
def test_input_rounding_bits(isa):
    """A K = 1 product by 1.0 returns bf16(a) exactly: ties to even,
    subnormals to zero, overflow to Inf, NaN kept."""
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0xBF818000, 0x00000001, 0x807FFFFF,
                     0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FA00000, 0x3F7FFFFF,
                     0x40490FDB, 0x00FF8000], dtype=np.uint32)
    a = bits.view(np.float32).reshape(-1, 1)
    got = _core.gemm_bf16(a, np.ones((1, 1), np.float32), isa=isa)
    want = to_bf16(a)
    finite = ~np.isnan(want)
    # values, not bits: a sum starts from +0, so -0 comes back as +0
    assert np.array_equal(got[finite], want[finite])
    assert np.isnan(got[~finite]).all()
    assert got[4, 0] == 0 and got[5, 0] == 0  # subnormals
    assert got[7, 0] == np.inf  # FLT_MAX rounds up to Inf
    assert got[0, 0] == 1.0 and got[1, 0] == np.float32(1.015625)  # ties to even


def test_isas_and_peak():
    isas = _core.bf16_isas()
    assert isas[-1] == "generic" and len(set(isas)) == len(isas)
    for isa in isas:
        assert _core.bf16_peak(isa=isa, iters=200, repeats=3) > 0
    with pytest.raises(ValueError, match=r"^isa: expected 'amx', 'avx512_bf16', 'generic'"):
        _core.bf16_peak(isa="sse")
    for bad in (0, -3, "x", True, 2 ** 70):
        with pytest.raises(ValueError, match=r"^iters: expected None or an int in \[1, 2\*\*40\]"):
            _core.bf16_peak(iters=bad)
    with pytest.raises(ValueError, match=r"^repeats: expected an int in \[1, 1000\], got 0"):
        _core.bf16_peak(repeats=0)


def test_the_kernels_are_those_the_cpu_has():
    # the list the tests above run on is the CPU's: every kernel whose
    # instructions the CPU has (AMX: and that the OS grants tile data for,
    # which Linux does when asked), and no other
    isas = _core.bf16_isas()
    flags = cpu_flags()
    if flags is not None and _core.gemm_isa() != "generic":  # x86 Linux: the CPU says what it has
        want = [isa for isa, need in BF16_ISA_FLAGS.items() if need <= flags]
        assert list(isas) == want, (isas, sorted(flags & set().union(*BF16_ISA_FLAGS.values())))
    else:  # elsewhere (or in a portable build) only the portable kernel is built
        assert isas == ("generic",)
    # a kernel asked for by name that this CPU lacks is refused, naming it
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    for isa in sorted(set(BF16_ISA_FLAGS) - set(isas)):
        with pytest.raises(ValueError, match=rf"^isa: '{isa}' is not available on this CPU"):
            _core.gemm_bf16(a, b, isa=isa)


def test_argument_errors():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"^b: expected 3 rows"):
        _core.gemm_bf16(a, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"^a, b: expected 2-D arrays"):
        _core.gemm_bf16(np.zeros(3, np.float32), np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"^c: expected shape"):
        _core.gemm_bf16(a, np.zeros((3, 5), np.float32), c=np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"^c: expected a C-contiguous writeable float32"):
        _core.gemm_bf16(a, np.zeros((3, 5), np.float32), c=np.zeros((2, 5)))
    buf = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=r"^c: must not share memory"):
        _core.gemm_bf16(buf.reshape(-1)[:6].reshape(2, 3), np.zeros((3, 5), np.float32), c=buf)
    with pytest.raises(ValueError, match=r"^isa: expected"):
        _core.gemm_bf16(a, np.zeros((3, 5), np.float32), isa="avx2")
    with pytest.raises(TypeError, match=r"^a: expected"):
        _core.gemm_bf16("x", np.zeros((3, 5), np.float32))
    # empty products are fine; K = 0 gives beta * c
    assert _core.gemm_bf16(np.zeros((0, 3), np.float32), np.zeros((3, 5), np.float32)).shape == (0, 5)
    c = np.ones((2, 5), np.float32)
    out = _core.gemm_bf16(np.zeros((2, 0), np.float32), np.zeros((0, 5), np.float32), beta=2.0, c=c)
    assert np.array_equal(out, np.full((2, 5), 2.0, np.float32))
