"""rnnpy.plot: training curves, hidden states and the echo sweep (defined in rnnpy.tools.plot)."""
from .tools.plot import accuracy_vs_echo_step, hidden_states, state_heatmap, training_curves

__all__ = ["training_curves", "state_heatmap", "hidden_states", "accuracy_vs_echo_step"]
