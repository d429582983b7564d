"""rnnpy: recurrent neural networks on NumPy arrays, computed in C.

    import rnnpy
    lstm = rnnpy.LSTM(input_size=8, hidden_size=32, num_layers=2, dtype="float64")
    out, (h, c) = lstm.forward(x)            # x: (B, T, 8) -> out: (B, T, 32)
    dx, (dh0, dc0) = lstm.backward(dout)     # adds into lstm.grads

Layers: RNN (tanh or relu), LSTM (optionally with peepholes), GRU, with
PyTorch's parameter names, shapes and gate order. ``gradcheck`` checks any
layer's gradients against finite differences.
"""
from . import _core
from .gradcheck import GradcheckResult, gradcheck
from .io import load, load_with_extra, save
from .layers import GRU, LSTM, RNN
from .module import Module
from .nn import Dense, Dropout, Embedding, LastStep, Sequential

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "Dense", "Embedding", "LastStep", "Dropout", "Sequential", "Module",
    "gradcheck", "GradcheckResult", "save", "load", "load_with_extra", "__version__",
]
