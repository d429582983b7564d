"""rnnpy.losses: the losses and accuracy (defined in rnnpy.train.losses)."""
from .train.losses import accuracy, binary_cross_entropy_with_logits, mse, softmax_cross_entropy

__all__ = ["softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "accuracy"]
