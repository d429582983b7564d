"""Smoke test of an installed rnnpy (run from outside the checkout, in a
fresh environment with NumPy only): import, one LSTM forward and backward,
and a gradient check."""
import os

import numpy as np

import rnnpy

here = os.path.dirname(os.path.abspath(rnnpy.__file__))
assert "site-packages" in here, f"rnnpy imported from {here}, not from the installed package"
assert os.path.exists(os.path.join(here, "py.typed")), "py.typed is not installed"
lstm = rnnpy.LSTM(3, 5, num_layers=2, dtype="float64", seed=0)
x = np.random.default_rng(0).standard_normal((2, 4, 3))
out, (h, c) = lstm.forward(x, lengths=[4, 2])
assert out.shape == (2, 4, 5) and h.shape == (2, 2, 5) and c.shape == (2, 2, 5)
dx, _ = lstm.backward(np.ones_like(out))
assert dx.shape == x.shape and np.isfinite(dx).all()
rnnpy.gradcheck(lstm, x)
print(f"rnnpy {rnnpy.__version__} from {here}: LSTM forward/backward and gradcheck pass")
