"""rnnpy: recurrent neural networks on NumPy arrays, computed in C.

    import rnnpy
    lstm = rnnpy.LSTM(input_size=8, hidden_size=32, num_layers=2, dtype="float64")
    out, (h, c) = lstm.forward(x)            # x: (B, T, 8) -> out: (B, T, 32)
    dx, (dh0, dc0) = lstm.backward(dout)     # adds into lstm.grads

Layers: RNN (tanh or relu), LSTM (optionally with peepholes), GRU, with
PyTorch's parameter names, shapes and gate order; Dense, Embedding, LastStep,
Dropout and Sequential compose with them. rnnpy.losses, rnnpy.optim and
rnnpy.fit train them; save/load keep them without pickle; ``gradcheck``
checks any module's gradients against finite differences.
"""
from . import _core, data, losses, optim
from .generate import Sampler, Vocabulary, generate, sample, softmax
from .gradcheck import GradcheckResult, gradcheck
from .io import ModelFileError, load, load_with_extra, save
from .layers import GRU, LSTM, RNN
from .module import Module
from .onnx_export import export_onnx
from .nn import Dense, Dropout, Embedding, LastStep, Sequential
from .training import EarlyStopping, History, ModelCheckpoint, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "Dense", "Embedding", "LastStep", "Dropout", "Sequential", "Module",
    "gradcheck", "GradcheckResult", "save", "load", "load_with_extra", "ModelFileError",
    "fit", "evaluate", "predict", "History", "EarlyStopping", "ModelCheckpoint",
    "export_onnx", "data", "losses", "optim", "__version__",
    "sample", "generate", "Sampler", "Vocabulary", "softmax",
]
