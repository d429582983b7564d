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
from . import _core, data, distributed, losses, optim, training
from .io import ModelFileError, export_onnx, load, load_with_extra, save
from .model_methods import install as _install_model_methods
from .nn import GRU, LSTM, RNN, Dense, Dropout, Embedding, LastStep, Module, Sequential, no_grad
from .tools.generate import Sampler, Vocabulary, generate, sample, softmax
from .tools.gradcheck import GradcheckResult, gradcheck
from .train import EarlyStopping, History, ModelCheckpoint, evaluate, fit, predict

# model.save / compile / fit / evaluate / predict / summary: defined above the
# layers they use (rnnpy.model_methods), given to Module here
_install_model_methods()

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "Dense", "Embedding", "LastStep", "Dropout", "Sequential", "Module",
    "gradcheck", "GradcheckResult", "save", "load", "load_with_extra", "ModelFileError",
    "fit", "evaluate", "predict", "History", "EarlyStopping", "ModelCheckpoint",
    "export_onnx", "data", "losses", "optim", "__version__",
    "sample", "generate", "Sampler", "Vocabulary", "softmax", "no_grad",
]
