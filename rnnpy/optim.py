"""rnnpy.optim: the optimizers, gradient clipping and learning-rate schedules
(defined in rnnpy.train.optimizer, .optimizers, .clipping and .schedules).
"""
from .train.clipping import clip_grad_norm, clip_grad_value
from .train.optimizer import Optimizer, uninterrupted
from .train.optimizers import SGD, Adam, AdamW, RMSprop
from .train.schedules import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR

__all__ = [
    "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "clip_grad_norm", "clip_grad_value",
    "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
]
