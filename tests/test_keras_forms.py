"""Keras's and PyTorch users' call forms on fit/evaluate/predict: compile then
fit(x, y, ...), optimizers by name, validation_data/verbose/restore_best_weights,
lists for arrays, iterables and generators of batches, SequenceBatches; and what
fit shows (a line per epoch when stderr is a file, verbose 0/1/2)."""
import io
import sys

import numpy as np
import pytest

import rnnpy
from rnnpy import optim
from rnnpy.training import EarlyStopping, evaluate, fit, predict

F64 = "float64"


def classifier(seed=0):
    return rnnpy.Sequential(rnnpy.LSTM(3, 5, dtype=F64, seed=seed), rnnpy.LastStep(dtype=F64),
                            rnnpy.Dense(5, 4, dtype=F64, seed=seed + 1))


def toy_data(n=64, T=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, 3))
    y = np.argmax(np.concatenate([x.mean(axis=1), np.zeros((n, 1))], axis=1), axis=1)
    return x, y


def test_compile_then_fit_x_y_as_keras():
    x, y = toy_data()
    xv, yv = toy_data(32, seed=1)
    model = classifier()
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, batch_size=16, validation_data=(xv, yv), verbose=0, seed=0)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(h["loss"]) == 3 and h["loss"][-1] < h["loss"][0]
    # the same run through rnnpy's own names gives the same numbers
    ref = classifier()
    h2 = fit(ref, (x, y), loss="cross_entropy", optimizer=optim.Adam(ref, lr=1e-3), epochs=3,
             batch_size=16, val=(xv, yv), progress=False, seed=0)
    assert h.history == h2.history
    np.testing.assert_array_equal(model.flat_params, ref.flat_params)
    res = model.evaluate(xv, yv)
    assert set(res) == {"loss", "accuracy"} and res["loss"] == pytest.approx(h["val_loss"][-1])
    np.testing.assert_array_equal(model.predict(xv), ref.predict(xv))


@pytest.mark.parametrize("name,cls,lr", [("sgd", optim.SGD, 0.01), ("Adam", optim.Adam, 1e-3),
                                         ("rmsprop", optim.RMSprop, 1e-3), ("adamw", optim.AdamW, 1e-3)])
def test_optimizer_by_name(name, cls, lr):
    model = classifier()
    model.compile(optimizer=name, loss="cross_entropy")
    opt = model._compiled["optimizer"]
    assert type(opt) is cls and opt.lr == pytest.approx(lr)
    x, y = toy_data(16)
    before = model.flat_params.copy()
    fit(model, x, y, optimizer=name, loss="cross_entropy", epochs=1, verbose=0)
    assert not np.array_equal(before, model.flat_params)


def test_bad_optimizer_and_missing_loss_are_named():
    model = classifier()
    with pytest.raises(ValueError, match="^optimizer: expected an optimizer or one of"):
        model.compile(optimizer="adagrad", loss="mse")
    with pytest.raises(TypeError, match="^loss: expected a loss name"):
        model.fit(*toy_data(8), optimizer="adam")
    with pytest.raises(TypeError, match="^validation_data: given together with val"):
        model.fit(*toy_data(8), loss="mse", optimizer="adam", val=toy_data(8), validation_data=toy_data(8))


def test_lists_for_x_y_and_lengths():
    x, y = toy_data(8)
    lengths = [6, 5, 4, 6, 3, 6, 2, 6]
    a, b = classifier(), classifier()
    ha = fit(a, (x.tolist(), list(y), lengths), loss="cross_entropy", optimizer="sgd", epochs=2,
             batch_size=4, seed=1, verbose=0)
    hb = fit(b, (x, y, np.array(lengths)), loss="cross_entropy", optimizer="sgd", epochs=2,
             batch_size=4, seed=1, verbose=0)
    assert ha.history == hb.history
    c = classifier()
    hc = c.fit(x, list(y), lengths=lengths, loss="cross_entropy", optimizer="sgd", epochs=2,
               batch_size=4, seed=1, verbose=0)
    assert hc.history == hb.history
    np.testing.assert_array_equal(c.predict(x.tolist(), lengths=lengths), b.predict(x, lengths=lengths))
    with pytest.raises(ValueError, match=r"^train\[0\]: expected an array-like of equal-length rows"):
        fit(classifier(), ([[[1.0] * 3] * 2, [[1.0] * 3]], [0, 1]), loss="cross_entropy", optimizer="sgd")


def test_iterables_generators_tuples_of_batches():
    x, y = toy_data(32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]

    def run(data, **kw):
        m = classifier()
        h = fit(m, data, loss="cross_entropy", optimizer=optim.SGD(m, lr=0.1), verbose=0, **kw)
        return h, m.flat_params.copy()

    ref, ref_params = run(batches, epochs=1)
    for data in (tuple(batches), iter(batches), (b for b in batches), map(tuple, batches)):
        h, p = run(data, epochs=1)
        assert h.history == ref.history
        np.testing.assert_array_equal(p, ref_params)
    # a generator over several epochs: steps_per_epoch batches each
    h, _ = run((b for _ in range(3) for b in batches), epochs=3, steps_per_epoch=4)
    assert len(h["loss"]) == 3
    # a used-up generator is named rather than silently training on nothing
    with pytest.raises(ValueError, match="^train: the iterator of batches was used up before epoch 2"):
        run((b for b in batches), epochs=2)


def test_sequence_batches_train_a_language_model():
    seq = np.random.default_rng(0).integers(0, 5, size=400)
    sb = rnnpy.data.sequence_batches(seq, batch_size=4, seq_len=10)
    model = rnnpy.Sequential(rnnpy.Embedding(5, 4, dtype=F64, seed=0), rnnpy.LSTM(4, 8, dtype=F64, seed=1),
                             rnnpy.Dense(8, 5, dtype=F64, seed=2))
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy", "top_2_accuracy"])
    h = model.fit(sb, epochs=2, stateful=True, validation_data=sb, verbose=0)
    assert len(h["loss"]) == 2 and set(h.history) >= {"top_2_accuracy", "val_top_2_accuracy"}
    assert h["top_2_accuracy"][-1] >= h["accuracy"][-1]
    res = model.evaluate(sb, stateful=True)
    assert res["loss"] == pytest.approx(h["val_loss"][-1])


def test_methods_keep_rnnpy_names_for_the_data():
    x, y = toy_data(16)
    a, b = classifier(), classifier()
    ha = a.fit(train=(x, y), loss="cross_entropy", optimizer="sgd", epochs=1, verbose=0, seed=0)
    hb = b.fit(x=x, y=y, loss="cross_entropy", optimizer="sgd", epochs=1, verbose=0, seed=0)
    assert ha.history == hb.history
    assert a.evaluate(data=(x, y), loss="cross_entropy") == a.evaluate(x, y, loss="cross_entropy")
    with pytest.raises(TypeError, match="^train: given together with x"):
        a.fit(x, train=(x, y), loss="cross_entropy", optimizer="sgd")


def test_early_stopping_keras_names():
    es = EarlyStopping(monitor="val_accuracy", mode="auto", restore_best_weights=False, patience=1)
    assert es.mode == "max" and es.restore_best is False
    assert EarlyStopping(mode="auto").mode == "min"


# -- what fit shows -------------------------------------------------------------------
class _File(io.StringIO):
    def isatty(self):
        return False


def test_fit_logs_a_line_per_epoch_when_stderr_is_a_file(monkeypatch):
    log = _File()
    monkeypatch.setattr(sys, "stderr", log)
    model = classifier()
    x, y = toy_data(16)
    fit(model, (x, y), loss="cross_entropy", optimizer="sgd", epochs=3, val=(x, y))
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3  ")
        assert "loss " in line and "accuracy " in line and "val_loss " in line and line.count("s  ") >= 1
    assert "\r" not in log.getvalue()   # no bar in a log file


@pytest.mark.parametrize("verbose,bar,lines", [(0, False, 0), (1, True, 2), (2, False, 2)])
def test_verbose_levels(monkeypatch, verbose, bar, lines):
    if bar:
        pytest.importorskip("tqdm")
    log = _File()
    monkeypatch.setattr(sys, "stderr", log)
    model = classifier()
    x, y = toy_data(16)
    fit(model, (x, y), loss="cross_entropy", optimizer="sgd", epochs=2, batch_size=4, verbose=verbose)
    text = log.getvalue()
    assert ("\r" in text) == bar
    assert sum(1 for ln in text.replace("\r", "\n").splitlines() if ln.startswith("epoch ")
               and "s  loss" in ln) == lines
    with pytest.raises(ValueError, match="^verbose: expected 0, 1, 2 or 'auto'"):
        fit(model, (x, y), loss="cross_entropy", optimizer="sgd", verbose=3)


def test_notebook_gets_a_bar_without_the_ipywidgets_warning(monkeypatch):
    """In Jupyter stderr is no terminal, yet a bar shows (verbose 'auto' -> 1);
    without ipywidgets the text bar is used instead of tqdm.auto's warning."""
    import types
    import warnings

    pytest.importorskip("tqdm")
    from rnnpy.train import progress as training

    class ZMQInteractiveShell:
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)   # not installed
    monkeypatch.setattr(sys, "stderr", _File())
    assert training._in_notebook() and training._verbosity("auto", None) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = training._progress(3, "epoch 1/1", 1)
        bar.update(1)
        bar.close()
    assert type(bar).__module__.startswith("tqdm")


def test_validation_split_and_keras_style_callbacks():
    x, y = toy_data(40)
    a, b = classifier(), classifier()
    ha = a.fit(x, y, loss="cross_entropy", optimizer="sgd", epochs=2, validation_split=0.25, verbose=0, seed=0)
    hb = b.fit(x[:30], y[:30], loss="cross_entropy", optimizer="sgd", epochs=2,
               validation_data=(x[30:], y[30:]), verbose=0, seed=0)
    assert ha.history == hb.history

    class Recorder:   # Keras's hooks: (epoch, logs), no trainer
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append((epoch, round(logs["loss"], 12)))

    rec = Recorder()
    h = classifier().fit(x, y, loss="cross_entropy", optimizer="sgd", epochs=2, verbose=0, callbacks=[rec])
    assert rec.seen == [(0, round(h["loss"][0], 12)), (1, round(h["loss"][1], 12))]
    with pytest.raises(TypeError, match="^callbacks: expected rnnpy Callbacks"):
        classifier().fit(x, y, loss="cross_entropy", optimizer="sgd", callbacks=[object()], verbose=0)
    with pytest.raises(ValueError, match="^validation_split: expected a fraction"):
        classifier().fit(x, y, loss="cross_entropy", optimizer="sgd", validation_split=1.5, verbose=0)
