"""The registry of cell kinds (rnnpy.cells) agrees with the layers and C types it describes."""
import numpy as np
import pytest

import rnnpy
from rnnpy import _core, cells


@pytest.mark.parametrize("name", list(cells.KINDS))
def test_kind_builds_its_layer_and_c_type(name):
    kind = cells.kind(name)
    layer = rnnpy.nn.recurrent_layer(name, 3, 5, dtype="float64", seed=0)
    assert type(layer).__name__ == kind.layer
    assert layer.family is kind.family
    assert layer.params["weight_ih_l0"].shape == (kind.gates * 5, 3)
    assert layer.num_params == kind.num_params(3, 5)
    c = getattr(_core, kind.c_type)(3, 5, dtype="float64", **dict(kind.options))
    assert c.num_params == kind.num_params(3, 5)
    assert isinstance(layer.forward(np.zeros((2, 4, 3)))[1], tuple) == kind.family.has_cell_state


@pytest.mark.parametrize("spelling, canonical", [
    ("peephole", "lstm_peephole"), ("lstm-peephole", "lstm_peephole"),
    ("LSTM_PEEPHOLE", "lstm_peephole"), ("lstm_peephole", "lstm_peephole"),
    ("RNN_TANH", "rnn_tanh"), ("rnn-relu", "rnn_relu"), ("rnn", "rnn_tanh"), ("GRU", "gru"),
])
def test_every_spelling_is_one_kind(spelling, canonical):
    assert cells.kind(spelling) is cells.KINDS[canonical]


def test_unknown_kind_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"cell: expected one of rnn_tanh, .*got 'lstm2'"):
        cells.kind("lstm2")


def test_family_of_layers_and_names():
    assert cells.family(rnnpy.LSTM(2, 3)) is cells.FAMILIES["lstm"]
    assert cells.family(rnnpy.GRU) is cells.FAMILIES["gru"]
    assert cells.family("RNN") is cells.FAMILIES["rnn"]
    assert cells.family("peephole") is cells.FAMILIES["lstm"]
    assert [f.gates for f in cells.FAMILIES.values()] == [1, 4, 3]
    with pytest.raises(ValueError, match="cell: expected an rnnpy RNN, LSTM or GRU, got Dense"):
        cells.family(rnnpy.Dense(2, 3))


def test_torch_has_every_kind_but_peepholes():
    assert [k.name for k in cells.kinds(torch=False)] == ["lstm_peephole"]
    assert cells.KINDS["rnn_relu"].torch_options == {"nonlinearity": "relu"}


def test_cli_and_demo_choices_come_from_the_registry():
    from rnnpy.tools import cli
    from rnnpy.demos import common

    assert list(cli.CELLS) == [k.cli_name for k in cells.kinds()]
    assert common.CELLS == ("rnn", "lstm", "gru", "peephole")
    layer = common.make_recurrent("peephole", 2, 3)
    assert type(layer) is rnnpy.LSTM and layer.peephole
