"""fit, evaluate and predict pin NumPy's BLAS to the model's thread count.

Dense layers, losses and clipping run on NumPy's BLAS, whose own threads would
otherwise run beside the recurrent kernels' (a threads=1 fit using two cores,
and two runtimes' waiting threads stalling each other). Inside the calls the
BLAS thread count equals the layers' threads=; outside, what it was before.
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import rnnpy
from rnnpy import optim
from rnnpy.training import Callback, evaluate, fit, predict


def _blas_threads():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


pytestmark = pytest.mark.skipif(not _blas_threads(), reason="NumPy has no BLAS that threadpoolctl sees")


class _Seen(Callback):
    def __init__(self):
        self.seen = []

    def on_train_begin(self, trainer):
        self.seen.append(_blas_threads())

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen.append(_blas_threads())


def _model(threads):
    rec = rnnpy.LSTM(3, 5, dtype="float64", seed=0, threads=threads)
    return rnnpy.Sequential(rec, rnnpy.LastStep(dtype="float64"),
                            rnnpy.Dense(5, 4, dtype="float64", seed=1))


def _data(n=32, T=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, T, 3)), rng.integers(0, 4, n)


@pytest.mark.parametrize("threads,outside", [(1, 2), (2, 1)])
def test_fit_evaluate_predict_pin_blas_and_restore(threads, outside):
    model = _model(threads)
    x, y = _data()
    seen = _Seen()
    with threadpool_limits(limits=outside, user_api="blas"):
        before = _blas_threads()
        fit(model, (x, y), loss="cross_entropy", optimizer=optim.Adam(model, lr=1e-2),
            epochs=2, batch_size=16, callbacks=[seen], progress=False)
        after_fit = _blas_threads()
        # evaluate and predict: the count read from inside the Dense layer's forward
        inside = []
        dense = model.modules[2]
        real_forward = dense.forward

        def spy(*args, **kwargs):
            inside.append(_blas_threads())
            return real_forward(*args, **kwargs)

        dense.forward = spy
        try:
            evaluate(model, (x, y), loss="cross_entropy")
            predict(model, x)
        finally:
            del dense.forward
        after_all = _blas_threads()
    assert before == [outside]
    assert seen.seen == [[threads]] * 3
    assert inside and all(v == [threads] for v in inside), inside
    assert after_fit == [outside] and after_all == [outside]


def test_blas_restored_when_fit_raises():
    model = _model(1)
    x, y = _data()
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(ValueError):
            fit(model, (x, y), loss="cross_entropy", optimizer=optim.Adam(model, lr=1e-2),
                epochs=-1, progress=False)
        assert _blas_threads() == [2]
