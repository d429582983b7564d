"""rnnpy.training: the training loop's public names (defined in rnnpy.train)."""
from .data.batches import lengths_mask
from .train.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .train.loop import evaluate, fit, predict
from .train.metrics import METRICS
from .train.resolve import LOSSES, OPTIMIZERS, resolve_loss, resolve_optimizer
from .train.trainer import Trainer

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
           "Trainer", "lengths_mask", "resolve_loss", "resolve_optimizer", "LOSSES", "METRICS",
           "OPTIMIZERS"]
