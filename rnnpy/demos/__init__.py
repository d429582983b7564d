"""Demo tasks: data generators for the temporal-order (sequence classification),
echo and char-rnn demos. The training runners build on these.
"""
