"""Building blocks: the Module base (one flat parameter buffer, the model lock),
the recurrent layers RNN, LSTM and GRU (stacks of C cells of the kinds in
rnnpy.cells), Dense, Embedding, LastStep, Dropout and Sequential, and the
recurrent layers' initialisations and thread counts; no_grad() for inference.
"""
from .grad_mode import grad_enabled, no_grad
from .layers import Dense, Dropout, Embedding, LastStep
from .module import Module
from .recurrent import GRU, LSTM, RNN, recurrent_layer
from .sequential import Sequential, padding_lengths

__all__ = ["Module", "RNN", "LSTM", "GRU", "Dense", "Embedding", "LastStep", "Dropout",
           "Sequential", "padding_lengths", "recurrent_layer", "no_grad", "grad_enabled"]
