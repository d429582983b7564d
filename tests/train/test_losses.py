"""rnnpy.losses against torch.nn.functional and finite differences.

Values and gradients must match torch to max|a - b| <= tol * max(1, max|b|),
tol 1e-12 in float64 and 1e-6 in float32 (torch computes float32 in float32;
rnnpy in float64, rounded at the end). Masks are compared with torch's
ignore_index (cross-entropy) or with the loss over the unmasked entries only.
Every gradient is also checked against central differences in float64.
"""
import numpy as np
import pytest
import helpers
from helpers import ErrorTable

from rnnpy import losses
from rnnpy.losses import accuracy, binary_cross_entropy_with_logits, mse, softmax_cross_entropy

TOL = {np.float64: 1e-12, np.float32: 1e-6}
DIFFS = ErrorTable("largest difference against torch (max|a-b| / max(1, max|b|)):")


def close(case, a, b, tol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    err = float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0.0))))
    DIFFS.record(case, err)
    assert err <= tol, f"{case}: {err:.3e} > {tol:.0e}"


def torch_value_grad(torch, fn, x, *args, **kw):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t, *args, **kw)
    out.backward()
    return float(out.detach()), t.grad.numpy()


def numeric_grad(f, x, eps=1e-6):
    return helpers.numeric_grad(f, np.array(x), eps)


SHAPES = [(4, 5), (3, 6, 7), (2, 3, 2, 4), (5, 1)]
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum"]


def class_data(shape, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * scale
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    mask = rng.random(shape[:-1]) < 0.7
    mask.reshape(-1)[0] = True
    return logits, targets, mask


# -- softmax cross-entropy -------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_matches_torch(shape, dtype, reduction, masked):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, targets, mask = class_data(shape)
    logits = logits.astype(dtype)
    C = shape[-1]
    ignored = np.where(mask, targets, -100) if masked else targets
    ref_loss, ref_grad = torch_value_grad(
        torch, lambda t: F.cross_entropy(t.reshape(-1, C), torch.tensor(ignored.reshape(-1)),
                                         ignore_index=-100, reduction=reduction), logits)
    loss, grad = softmax_cross_entropy(logits, targets, mask if masked else None, reduction)
    assert isinstance(loss, float)
    assert grad.dtype == dtype and grad.shape == logits.shape
    case = f"cross_entropy {np.dtype(dtype).name}"
    close(case + " value", loss, ref_loss, TOL[dtype])
    close(case + " grad", grad, ref_grad, TOL[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_finite_differences(reduction):
    logits, targets, mask = class_data((3, 4, 5), seed=1)
    f = lambda x: softmax_cross_entropy(x, targets, mask, reduction)[0]  # noqa: E731
    _, grad = softmax_cross_entropy(logits, targets, mask, reduction)
    num = numeric_grad(f, logits)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
    assert np.abs(grad).max() > 1e-2


def test_cross_entropy_extreme_logits():
    x = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])
    t = np.array([0, 1, 2, 0])
    for dtype in DTYPES:
        loss, grad = softmax_cross_entropy(x.astype(dtype), t, reduction="sum")
        # losses 0, 2e4, log 3, log 2
        assert loss == pytest.approx(2e4 + np.log(3) + np.log(2), rel=1e-12)
        expected = np.array([[0, 0, 0], [1, -1, 0], [1 / 3, 1 / 3, -2 / 3], [-0.5, 0.5, 0]])
        np.testing.assert_allclose(grad, expected, atol=1e-7)
        assert np.isfinite(grad).all()
    torch = pytest.importorskip("torch")
    ref_loss, ref_grad = torch_value_grad(
        torch, lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(t), reduction="sum"), x)
    loss, grad = softmax_cross_entropy(x, t, reduction="sum")
    close("cross_entropy extreme", loss, ref_loss, 1e-12)
    close("cross_entropy extreme grad", grad, ref_grad, 1e-12)


def test_cross_entropy_mask_semantics():
    logits, targets, mask = class_data((4, 6, 3), seed=2)
    loss, grad = softmax_cross_entropy(logits, targets, mask)
    # masked positions: no gradient, and their logits and targets do not matter
    assert not grad[~mask].any()
    other = logits.copy()
    other[~mask] = 1e3
    bad_targets = np.where(mask, targets, -100)
    loss2, grad2 = softmax_cross_entropy(other, bad_targets, mask)
    assert loss2 == loss
    np.testing.assert_array_equal(grad2, grad)
    # mean is over unmasked positions: equals the mean of the selected rows
    sel_loss, _ = softmax_cross_entropy(logits[mask], targets[mask])
    assert loss == pytest.approx(sel_loss, rel=1e-14)
    sum_loss, _ = softmax_cross_entropy(logits, targets, mask, reduction="sum")
    assert sum_loss == pytest.approx(loss * mask.sum(), rel=1e-14)
    # 0/1 numbers work as a mask like bools
    loss3, grad3 = softmax_cross_entropy(logits, targets, mask.astype(np.float32))
    assert loss3 == loss
    np.testing.assert_array_equal(grad3, grad)
    # everything masked: zero loss, zero gradient
    loss0, grad0 = softmax_cross_entropy(logits, targets, np.zeros(mask.shape, bool))
    assert loss0 == 0.0 and not grad0.any() and grad0.shape == logits.shape


def test_cross_entropy_last_step_and_lists():
    # (B, C) with plain lists: the last-step case
    loss, grad = softmax_cross_entropy([[0.0, 0.0], [0.0, np.log(3.0)]], [0, 1])
    assert loss == pytest.approx((np.log(2) + np.log(4 / 3)) / 2, rel=1e-14)
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, [[-0.25, 0.25], [0.125, -0.125]], atol=1e-15)


# -- binary cross-entropy with logits -------------------------------------------------------

def binary_data(shape, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * 3
    targets = rng.random(shape)
    targets.reshape(-1)[::3] = np.round(targets.reshape(-1)[::3])
    mask = rng.random(shape[:2]) < 0.7
    mask.reshape(-1)[0] = True
    return logits, targets, mask


@pytest.mark.parametrize("shape", [(6,), (4, 5), (3, 4, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(shape, dtype, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, targets, _ = binary_data(shape)
    logits = logits.astype(dtype)
    ref_loss, ref_grad = torch_value_grad(
        torch, lambda t: F.binary_cross_entropy_with_logits(
            t, torch.tensor(targets.astype(dtype)), reduction=reduction), logits)
    loss, grad = binary_cross_entropy_with_logits(logits, targets.astype(dtype), reduction=reduction)
    assert grad.dtype == dtype and grad.shape == logits.shape
    case = f"bce {np.dtype(dtype).name}"
    close(case + " value", loss, ref_loss, TOL[dtype])
    close(case + " grad", grad, ref_grad, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_masked_matches_torch_on_selected(dtype, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, targets, mask = binary_data((5, 6, 2), seed=3)
    logits = logits.astype(dtype)
    ref_loss, ref_grad_sel = torch_value_grad(
        torch, lambda t: F.binary_cross_entropy_with_logits(
            t, torch.tensor(targets[mask].astype(dtype)), reduction=reduction), logits[mask])
    ref_grad = np.zeros_like(logits)
    ref_grad[mask] = ref_grad_sel
    # a (B, T) mask over (B, T, F) logits, and the full-shape mask, agree
    for m in (mask, np.repeat(mask[..., None], 2, axis=-1)):
        loss, grad = binary_cross_entropy_with_logits(logits, targets, m, reduction)
        close(f"bce masked {np.dtype(dtype).name} value", loss, ref_loss, TOL[dtype])
        close(f"bce masked {np.dtype(dtype).name} grad", grad, ref_grad, TOL[dtype])
    loss0, grad0 = binary_cross_entropy_with_logits(logits, targets, np.zeros_like(mask))
    assert loss0 == 0.0 and not grad0.any()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_finite_differences(reduction):
    logits, targets, mask = binary_data((3, 4, 2), seed=4)
    f = lambda x: binary_cross_entropy_with_logits(x, targets, mask, reduction)[0]  # noqa: E731
    _, grad = binary_cross_entropy_with_logits(logits, targets, mask, reduction)
    np.testing.assert_allclose(grad, numeric_grad(f, logits), rtol=1e-6, atol=1e-8)
    assert np.abs(grad).max() > 1e-2


def test_bce_extreme_logits():
    x = np.array([1e4, -1e4, 1e4, -1e4, 40.0, -40.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    for dtype in DTYPES:
        loss, grad = binary_cross_entropy_with_logits(x.astype(dtype), y, reduction="sum")
        assert loss == pytest.approx(2e4 + 80.0, rel=1e-12)
        np.testing.assert_allclose(grad, [0, 0, 1, -1, 1, -1], atol=1e-12)
        assert np.isfinite(grad).all()
    # tiny losses keep their digits: log(1 + e^-40) = e^-40 to double precision
    loss, _ = binary_cross_entropy_with_logits(np.array([40.0]), np.array([1.0]))
    assert loss == pytest.approx(np.exp(-40.0), rel=1e-14, abs=0)
    torch = pytest.importorskip("torch")
    ref_loss, ref_grad = torch_value_grad(
        torch, lambda t: torch.nn.functional.binary_cross_entropy_with_logits(
            t, torch.tensor(y), reduction="sum"), x)
    loss, grad = binary_cross_entropy_with_logits(x, y, reduction="sum")
    close("bce extreme", loss, ref_loss, 1e-12)
    close("bce extreme grad", grad, ref_grad, 1e-12)


def test_bce_integer_targets():
    logits = np.array([[0.5, -2.0], [1.0, 3.0]])
    a = binary_cross_entropy_with_logits(logits, np.array([[1, 0], [0, 1]]))
    b = binary_cross_entropy_with_logits(logits, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


# -- mean squared error --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (4, 5), (3, 4, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(shape, dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    pred = rng.standard_normal(shape).astype(dtype)
    targets = rng.standard_normal(shape).astype(dtype)
    ref_loss, ref_grad = torch_value_grad(
        torch, lambda t: torch.nn.functional.mse_loss(t, torch.tensor(targets), reduction=reduction),
        pred)
    loss, grad = mse(pred, targets, reduction=reduction)
    assert grad.dtype == dtype and grad.shape == pred.shape
    close(f"mse {np.dtype(dtype).name} value", loss, ref_loss, TOL[dtype])
    close(f"mse {np.dtype(dtype).name} grad", grad, ref_grad, TOL[dtype])


def test_mse_mask_and_finite_differences():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    pred, targets = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))
    mask = rng.random((4, 5)) < 0.6
    ref_loss, ref_sel = torch_value_grad(
        torch, lambda t: torch.nn.functional.mse_loss(t, torch.tensor(targets[mask])), pred[mask])
    ref_grad = np.zeros_like(pred)
    ref_grad[mask] = ref_sel
    loss, grad = mse(pred, targets, mask)
    close("mse masked value", loss, ref_loss, 1e-12)
    close("mse masked grad", grad, ref_grad, 1e-12)
    f = lambda x: mse(x, targets, mask, "sum")[0]  # noqa: E731
    np.testing.assert_allclose(mse(pred, targets, mask, "sum")[1], numeric_grad(f, pred),
                               rtol=1e-6, atol=1e-8)
    loss0, grad0 = mse(pred, targets, np.zeros((4, 5), bool))
    assert loss0 == 0.0 and grad0.shape == pred.shape and not grad0.any()


def test_mse_exact_values():
    loss, grad = mse(np.array([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0]))
    assert loss == pytest.approx(13 / 3, rel=1e-15)
    np.testing.assert_allclose(grad, [0.0, 4 / 3, 2.0], rtol=1e-15)


# -- accuracy -------------------------------------------------------------------------------

def test_accuracy():
    logits = np.array([[[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]], [[0.0, 0.0, 5.0], [1.0, 0.0, 0.0]]])
    targets = np.array([[0, 2], [2, 1]])
    assert accuracy(logits, targets) == 0.5
    assert accuracy(logits, targets, mask=np.array([[1, 0], [1, 0]])) == 1.0
    assert accuracy(logits, targets, mask=np.zeros((2, 2), bool)) == 0.0
    # binary: same shape, logits > 0 against targets >= 0.5
    assert accuracy(np.array([0.3, -1.0, 2.0, -0.1]), np.array([1, 0, 0, 1])) == 0.5
    assert accuracy(np.array([[0.3], [-1.0]]), np.array([[1.0], [0.0]])) == 1.0
    binary = np.array([[[0.3], [-1.0], [2.0]], [[1.0], [1.0], [-1.0]]])
    labels = np.array([[[1], [0], [0]], [[1], [0], [0]]])
    assert accuracy(binary, labels) == 4 / 6
    assert accuracy(binary, labels, mask=np.array([[1, 1, 0], [1, 0, 0]])) == 1.0
    with pytest.raises(ValueError, match="mask"):
        accuracy(logits, targets, mask=np.ones((2,), bool))


# -- bad inputs ----------------------------------------------------------------------------

X = np.zeros((4, 3))
T = np.zeros(4, dtype=np.int64)

BAD = [
    (softmax_cross_entropy, (X.astype(np.int64), T), TypeError, "logits: expected a float32 or float64"),
    (softmax_cross_entropy, (np.full((4, 3), np.nan), T), ValueError, "logits: expected finite"),
    (softmax_cross_entropy, (X, np.zeros(5, np.int64)), ValueError,
     r"targets: expected shape logits.shape\[:-1\] = \(4,\), got \(5,\)"),
    (softmax_cross_entropy, (X, np.zeros(4)), TypeError, "targets: expected integer"),
    (softmax_cross_entropy, (X, np.array([0, 1, 3, 0])), ValueError, r"targets: .*\[0, 3\), got 3"),
    (softmax_cross_entropy, (X, np.array([0, -1, 2, 0])), ValueError, "targets: .* got -1"),
    (softmax_cross_entropy, (X, T, np.ones(3)), ValueError, r"mask: expected .*\(4,\), got \(3,\)"),
    (softmax_cross_entropy, (X, T, np.array([0, 1, 2, 1])), ValueError, "mask: expected bool or 0/1"),
    (softmax_cross_entropy, (X, T, None, "avg"), ValueError, "reduction"),
    (softmax_cross_entropy, (np.zeros((4, 0)), T), ValueError, "logits: expected shape"),
    (binary_cross_entropy_with_logits, (X, np.zeros((4, 2))), ValueError, r"targets: .*\(4, 3\)"),
    (binary_cross_entropy_with_logits, (X, np.full((4, 3), 1.5)), ValueError, r"targets: .*\[0, 1\]"),
    (binary_cross_entropy_with_logits, (X, np.full((4, 3), np.inf)), ValueError, "targets: expected finite"),
    (binary_cross_entropy_with_logits, (X, X, np.ones(3)), ValueError, "mask"),
    (binary_cross_entropy_with_logits, (X, np.array([["a"] * 3] * 4)), TypeError, "targets"),
    (mse, (X, np.zeros(4)), ValueError, "targets"),
    (mse, (X.astype(np.int32), X), TypeError, "pred"),
    (mse, (np.full((4, 3), np.inf), X), ValueError, "pred: expected finite"),
    (mse, (X, X, None, "none"), ValueError, "reduction"),
    (accuracy, (X, np.zeros(5, np.int64)), ValueError, "targets"),
]


@pytest.mark.parametrize("fn,args,exc,match", BAD, ids=[f"{f.__name__}-{i}" for i, (f, *_ ) in enumerate(BAD)])
def test_bad_inputs(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


def test_masked_targets_are_not_range_checked():
    loss, _ = softmax_cross_entropy(X, np.array([0, -100, 2, 99]), np.array([1, 0, 1, 0]))
    assert loss == pytest.approx(np.log(3), rel=1e-15)
    with pytest.raises(ValueError, match="targets"):
        softmax_cross_entropy(X, np.array([0, -100, 2, 99]), np.array([1, 1, 1, 0]))


def test_public_names():
    assert set(losses.__all__) == {"softmax_cross_entropy", "binary_cross_entropy_with_logits",
                                   "mse", "accuracy"}
