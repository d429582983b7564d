"""Sequence data for training, as in seed 003 and the course notebooks.

One long sequence (a text as ids, a time series) -> batchify into batch_size
rows -> windows of seq_len with targets shifted by one, the state carried from
window to window (truncated BPTT); sequence_batches does all of it. Sets of
variable-length sequences -> pad_sequences (left or right) with their lengths.
Arrays -> train_val_split, iterate_minibatches. Text -> CharVocab.
fit reads its data argument through rnnpy.data.batches.
"""
from .arrays import iterate_minibatches, one_hot, pad_sequences, train_val_split
from .arrays import split_sequence
from .sequences import (SequenceBatches, batchify, num_windows, sequence_batches,
                        windows)
from .vocab import CharVocab

__all__ = [
    "batchify", "windows", "num_windows", "sequence_batches", "SequenceBatches",
    "pad_sequences", "one_hot", "train_val_split", "split_sequence",
    "iterate_minibatches", "CharVocab",
]
