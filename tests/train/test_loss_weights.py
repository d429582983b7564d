"""Class and sample weights in the losses (against torch's weighted
cross-entropy and a hand-written weighted mean), and fit's class_weight."""
import numpy as np
import pytest

import rnnpy
from rnnpy import losses


def test_class_weights_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    loss, grad = losses.softmax_cross_entropy(x, t, weight=w)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tx, torch.tensor(t), weight=torch.tensor(w))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-12)


def test_sample_weights_are_a_weighted_mean():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 4))
    t = rng.integers(0, 4, (5, 3))
    sw = np.array([1.0, 0.0, 2.0, 1.0, 3.0])
    loss, grad = losses.softmax_cross_entropy(x, t, sample_weight=sw)
    per = np.array([[losses.softmax_cross_entropy(x[b, s], t[b, s], reduction="sum")[0] for s in range(3)]
                    for b in range(5)])
    assert loss == pytest.approx((per * sw[:, None]).sum() / (sw.sum() * 3), rel=1e-12)
    assert np.all(grad[1] == 0)
    p = rng.standard_normal((5, 2))
    y = rng.standard_normal((5, 2))
    m, g = losses.mse(p, y, sample_weight=sw)
    assert m == pytest.approx(((p - y) ** 2 * sw[:, None]).sum() / (sw.sum() * 2), rel=1e-12)
    np.testing.assert_allclose(g, 2 * (p - y) * sw[:, None] / (sw.sum() * 2))
    b, _ = losses.binary_cross_entropy_with_logits(p, (y > 0) * 1.0, sample_weight=np.ones(5))
    assert b == pytest.approx(losses.binary_cross_entropy_with_logits(p, (y > 0) * 1.0)[0], rel=1e-12)
    with pytest.raises(ValueError, match="^sample_weight: expected finite non-negative"):
        losses.mse(p, y, sample_weight=-sw)
    with pytest.raises(ValueError, match=r"^weight: expected shape \(4,\)"):
        losses.softmax_cross_entropy(x, t, weight=[1.0, 2.0])


def test_fit_class_weight_changes_training_like_the_weighted_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4, 2))
    y = (x[:, :, 0].mean(axis=1) > 0.5).astype(int)

    def model():
        return rnnpy.Sequential(rnnpy.GRU(2, 3, dtype="float64", seed=0), rnnpy.LastStep(dtype="float64"),
                                rnnpy.Dense(3, 2, dtype="float64", seed=1))

    a, b = model(), model()
    a.fit(x, y, loss="cross_entropy", optimizer="sgd", class_weight={0: 1.0, 1: 4.0}, epochs=2,
          shuffle=False, verbose=0)
    w = np.array([1.0, 4.0])
    b.fit(x, y, loss=lambda o, t, **kw: losses.softmax_cross_entropy(o, t, weight=w, **kw),
          optimizer="sgd", epochs=2, shuffle=False, verbose=0, metrics=[])
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
