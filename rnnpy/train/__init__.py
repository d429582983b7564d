"""Training: the loop (fit, evaluate, predict over a Trainer's steps), callbacks,
optimizers, learning-rate schedules, gradient clipping, losses, metrics, and
data-parallel training over MPI (rnnpy.train.distributed).
"""
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .loop import evaluate, fit, predict

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping", "ModelCheckpoint"]
