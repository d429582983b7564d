"""The Keras-style methods of every rnnpy module: ``model.save``, ``compile``,
``fit``, ``evaluate``, ``predict`` and ``summary``.

They are forms of rnnpy.save, rnnpy.fit, ... and so need rnnpy.io, rnnpy.train
and rnnpy.tools, which all build on rnnpy.nn. Defining them on Module would make
the base class import the layers above it (a cycle); instead they are defined
here, above everything they call, and attached to Module once by ``install``,
which rnnpy/__init__ runs (importing any rnnpy module imports the package
first, so every module object has them). rnnpy.nn knows nothing of files or
training loops.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .io.checkpoint import save
from .nn.module import Module
from .tools.summary import summary
from .train.loop import evaluate, fit, predict
from .train.resolve import resolve_loss, resolve_optimizer


class ModelMethods:
    """The methods install() gives Module (and so every layer and model)."""

    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Writes the model to path atomically, without pickle (see rnnpy.io.save)."""
        save(self, path, extra)

    def compile(self, optimizer: Any = "adam", loss: Any = None,
                metrics: Optional[Any] = None) -> Module:
        """Keras's form: keeps the optimizer (a name such as "adam", "sgd",
        "rmsprop", or an rnnpy.optim optimizer), the loss and the metrics that
        fit and evaluate use when not given theirs. Returns self."""
        if loss is None:
            raise TypeError("loss: expected a loss name or function")
        resolve_loss(loss)   # refuse a bad name now, not at fit
        self._compiled = {"optimizer": resolve_optimizer(self, optimizer), "loss": loss,
                          "metrics": metrics}
        return self

    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """rnnpy.fit(self, x, y, **kwargs): fit(x, y, epochs=, batch_size=,
        validation_data=, verbose=, callbacks=) after compile(), or
        fit((x, y[, lengths]) or batches, loss=, optimizer=, ...)."""
        if "train" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("train: given together with x (its other name); pass one")
            x = kwargs.pop("train")
        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Dict[str, float]:
        """rnnpy.evaluate(self, x, y, **kwargs)."""
        if "data" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("data: given together with x (its other name); pass one")
            x = kwargs.pop("data")
        return evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """rnnpy.predict(self, x, **kwargs)."""
        return predict(self, x, **kwargs)

    def summary(self, input_shape: Optional[Any] = None, print_fn: Any = print) -> str:
        """Prints (with print_fn) and returns a table of the modules, their
        output shapes (given input_shape, one example's shape without the
        batch axis: (T, I), or (T,) for token ids) and parameter counts."""
        text = summary(self, input_shape)
        if print_fn is not None:
            print_fn(text)
        return text


def install(cls: type = Module) -> None:
    """Gives cls (rnnpy.nn.Module) the methods of ModelMethods it does not define."""
    for name, fn in vars(ModelMethods).items():
        if callable(fn) and not name.startswith("__") and name not in vars(cls):
            setattr(cls, name, fn)
