"""The training loop: parity with a PyTorch loop step for step, history and
metrics, stateful truncated BPTT, callbacks, exact resume from a checkpoint,
and a clear stop on a non-finite loss."""
import numpy as np
import pytest

import rnnpy
from rnnpy import optim
from rnnpy.training import EarlyStopping, ModelCheckpoint, evaluate, fit, predict

F64 = "float64"


def classifier(cell="lstm", dtype=F64, seed=0):
    rec = {"lstm": rnnpy.LSTM, "gru": rnnpy.GRU, "rnn": rnnpy.RNN}[cell](3, 5, dtype=dtype, seed=seed)
    return rnnpy.Sequential(rec, rnnpy.LastStep(dtype=dtype), rnnpy.Dense(5, 4, dtype=dtype, seed=seed + 1))


def toy_data(n=64, T=6, seed=0):
    """Class = argmax of the mean of the first 3 features over time (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, 3))
    y = np.argmax(np.concatenate([x.mean(axis=1), np.zeros((n, 1))], axis=1), axis=1)
    return x, y


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fit_matches_a_pytorch_loop_step_for_step(cell):
    torch = pytest.importorskip("torch")
    model = classifier(cell)
    x, y = toy_data()
    tcls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    rec = tcls(3, 5, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(5, 4, dtype=torch.float64)
    rec.load_state_dict({k[2:]: torch.from_numpy(v.copy()) for k, v in model.params.items() if k[0] == "0"})
    lin.load_state_dict({k[2:]: torch.from_numpy(v.copy()) for k, v in model.params.items() if k[0] == "2"})
    params = list(rec.parameters()) + list(lin.parameters())
    topt = torch.optim.RMSprop(params, lr=1e-2)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    torch_losses = []
    for _ in range(3):
        for xb, yb in batches:
            topt.zero_grad()
            out = lin(rec(torch.from_numpy(xb))[0][:, -1])
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(yb))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            topt.step()
            torch_losses.append(loss.item())
    ours = []

    def record(out, yb, **kw):
        v, g = rnnpy.losses.softmax_cross_entropy(out, yb, **kw)
        ours.append(v)
        return v, g

    fit(model, batches, loss=record, optimizer=optim.RMSprop(model, lr=1e-2), epochs=3,
        clip_norm=0.5, metrics=(), progress=False)
    np.testing.assert_allclose(ours, torch_losses, rtol=1e-10)
    final = dict(zip([n for n, _ in rec.named_parameters()], [p.detach().numpy() for p in rec.parameters()]))
    for k, v in final.items():
        np.testing.assert_allclose(model.params["0." + k], v, rtol=1e-9, atol=1e-12)


def test_fit_learns_and_reports_history():
    model = classifier(dtype="float32")
    x, y = toy_data(256)
    xv, yv = toy_data(128, seed=1)
    h = fit(model, (x.astype(np.float32), y), loss="cross_entropy", optimizer=optim.Adam(model, lr=3e-2),
            epochs=12, batch_size=32, val=(xv.astype(np.float32), yv), seed=0, progress=False)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h["loss"]) == 12 and h.epoch == list(range(12))
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.75 and h["val_accuracy"][-1] > h["val_accuracy"][0] + 0.2
    ev = evaluate(model, (xv.astype(np.float32), yv), loss="cross_entropy")
    assert ev["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    p = predict(model, xv.astype(np.float32), batch_size=50)
    assert p.shape == (128, 4)
    assert np.mean(p.argmax(1) == yv) == pytest.approx(ev["accuracy"])


def test_nonfinite_loss_stops_with_the_batch_named():
    model = rnnpy.Sequential(rnnpy.Dense(3, 4, dtype=F64, seed=0))
    x, y = toy_data(64)
    # the first step overflows the weights to inf, so the second batch's loss is NaN
    with pytest.raises(FloatingPointError, match=r"^loss is (nan|inf) at epoch 1, batch 2: training stopped"):
        fit(model, [(x[i:i + 16, 0], y[i:i + 16]) for i in range(0, 64, 16)], loss="cross_entropy",
            optimizer=optim.SGD(model, lr=1e308), epochs=1, metrics=(), progress=False)

    def exploding(out, yb, **kw):
        return float("nan"), np.zeros_like(out)

    clf = classifier()
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, batch 1"):
        fit(clf, (x[:16], y[:16]), loss=exploding, optimizer=optim.SGD(clf, lr=0.1),
            epochs=1, progress=False)


def test_stateful_carries_state_and_resets_each_epoch():
    """Stateful training over consecutive windows equals one long forward pass
    per epoch, state reset at each epoch start (checked on the losses)."""
    model = rnnpy.Sequential(rnnpy.GRU(1, 3, dtype=F64, seed=0), rnnpy.Dense(3, 1, dtype=F64, seed=1))
    rng = np.random.default_rng(0)
    series = rng.standard_normal((2, 12, 1))
    target = np.roll(series, 1, axis=1)
    windows = [(series[:, i:i + 4], target[:, i:i + 4]) for i in range(0, 12, 4)]
    seen = []

    def record(out, yb, **kw):
        seen.append(out.copy())
        return rnnpy.losses.mse(out, yb)

    fit(model, windows, loss=record, optimizer=optim.SGD(model, lr=0.0), epochs=2, stateful=True,
        metrics=(), progress=False)
    full, _ = model.forward(series)
    np.testing.assert_allclose(np.concatenate(seen[:3], axis=1), full, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate(seen[3:], axis=1), full, rtol=1e-12)
    seen.clear()
    fit(model, windows, loss=record, optimizer=optim.SGD(model, lr=0.0), epochs=1, stateful=False,
        metrics=(), progress=False)
    assert not np.allclose(seen[1], full[:, 4:8])   # without carrying, window 2 starts from zeros


def test_early_stopping_restores_the_best_epoch():
    model = classifier()
    x, y = toy_data(64)
    xv, yv = toy_data(64, seed=3)
    stop = EarlyStopping(monitor="val_loss", patience=2)
    h = fit(model, (x, y), loss="cross_entropy", optimizer=optim.SGD(model, lr=5.0), epochs=50,
            val=(xv, yv), callbacks=[stop], seed=0, progress=False)
    assert len(h.epoch) < 50
    assert stop.best == min(h["val_loss"])
    assert evaluate(model, (xv, yv), loss="cross_entropy")["loss"] == pytest.approx(stop.best, rel=1e-12)


def test_resume_from_checkpoint_is_exact(tmp_path):
    x, y = toy_data(96)
    xv, yv = toy_data(32, seed=1)

    def run(model, opt, epochs, initial_epoch=0, callbacks=()):
        return fit(model, (x, y), loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=16,
                   val=(xv, yv), seed=7, initial_epoch=initial_epoch, callbacks=callbacks,
                   progress=False)

    straight = classifier()
    h_all = run(straight, optim.Adam(straight, lr=1e-2), 4)

    first = classifier()
    run(first, optim.Adam(first, lr=1e-2), 2, callbacks=[ModelCheckpoint(str(tmp_path / "ck.npz"))])
    model, extra = rnnpy.load_with_extra(str(tmp_path / "ck.npz"))
    assert extra["epoch"] == 2
    opt = optim.Adam(model, lr=1e-2)
    opt.load_state_dict(extra["optimizer"])
    h_rest = run(model, opt, 2, initial_epoch=extra["epoch"])
    assert h_rest.epoch == [2, 3]
    assert h_rest["loss"] == h_all["loss"][2:]          # bit-identical in float64
    np.testing.assert_array_equal(model.flat_params, straight.flat_params)


def test_progress_bar_is_quiet_when_asked(capsys):
    model = classifier()
    x, y = toy_data(32)
    fit(model, (x, y), loss="cross_entropy", optimizer=optim.SGD(model, lr=0.1), epochs=1, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_fit_argument_errors():
    model = classifier()
    x, y = toy_data(8)
    opt = optim.SGD(model, lr=0.1)
    with pytest.raises(ValueError, match="^loss: expected a callable or one of"):
        fit(model, (x, y), loss="hinge", optimizer=opt)
    with pytest.raises(ValueError, match="^epochs"):
        fit(model, (x, y), loss="mse", optimizer=opt, epochs=-1)
    with pytest.raises(ValueError, match="^batch_size"):
        fit(model, (x, y), loss="mse", optimizer=opt, batch_size=0)
    with pytest.raises(ValueError, match=r"^train\[1\]: expected 8 rows"):
        fit(model, (x, y[:5]), loss="cross_entropy", optimizer=opt)
    with pytest.raises(TypeError, match="^train: expected batches"):
        fit(model, [(x,)], loss="cross_entropy", optimizer=opt)
    with pytest.raises(ValueError, match="^metrics: unknown metric 'f1'"):
        fit(model, (x, y), loss="cross_entropy", optimizer=opt, metrics=("f1",), progress=False)
    with pytest.raises(KeyError, match="monitor"):
        fit(model, (x, y), loss="cross_entropy", optimizer=opt, callbacks=[EarlyStopping()],
            progress=False)


def test_time_major_models_are_refused_by_the_training_loop():
    model = rnnpy.Sequential(rnnpy.LSTM(3, 4, time_major=True, dtype=F64), rnnpy.Dense(4, 2, dtype=F64))
    x = np.zeros((7, 20, 3))
    for call in (lambda: fit(model, (x, np.zeros((7, 20, 2))), loss="mse", optimizer=optim.SGD(model, lr=0.1)),
                 lambda: evaluate(model, (x, np.zeros((7, 20, 2))), loss="mse"),
                 lambda: predict(model, x)):
        with pytest.raises(ValueError, match="model: LSTM is time-major, but .* takes batch-first data"):
            call()
