"""Every constructor's arguments, each given values of the wrong type or out
of range: a TypeError or ValueError whose message starts with the argument's
name. A bool argument takes only bool or np.bool_ ("yes" would be true), an
int argument no float or string, a choice only one of its strings; and a
model file whose configuration holds such a value is a ModelFileError."""
import json
import zipfile

import numpy as np
import pytest

import rnnpy
from rnnpy import io, optim
from rnnpy.tools.generate import Sampler, Vocabulary

NAN, INF = float("nan"), float("inf")
BAD = {
    "bool": ["yes", "no", "", 1, 0, 1.0, None, [True], np.array([True])],
    "int+": ["3", 3.0, 2.5, True, None, [3], 0, -1, np.float64(3)],
    "int0": ["3", 3.0, True, None, -1],
    "prob": ["0.5", True, None, [0.5], 1.0, -0.1, NAN, INF],
    "real0": ["0.1", True, None, [0.1], -1.0, NAN],
    "dtype": ["int32", 5, None, "float16", np.int64],
    "seed": ["1", 1.5, -1, True, [1]],
    "str": [5, None, b"val_loss", ["val_loss"]],
}


def choice(*bad):
    return list(bad) + [5, np.array("tanh"), np.array(["concat"]), b"x", 1.5]


def _dense():
    return rnnpy.Dense(2, 2)


# constructor -> (valid arguments, {argument: bad values})
RECURRENT = {"input_size": BAD["int+"], "hidden_size": BAD["int+"], "num_layers": BAD["int+"],
             "bidirectional": BAD["bool"], "dropout": BAD["prob"], "dtype": BAD["dtype"],
             "seed": BAD["seed"], "time_major": BAD["bool"], "threads": [v for v in BAD["int+"] if v is not None] + [1000],
             "merge_mode": choice("Concat", "max", ""), "zoneout": BAD["prob"],
             "recurrent_dropout": BAD["prob"], "init": choice("Chrono", "", None),
             "recurrent_init": choice("Orthogonal", None),
             "compute_dtype": choice("bf16", "BFLOAT16", "float64", "float16", "")}
GATED = {"forget_bias": ["1", True, NAN, INF, [1.0], 1e300]}
TABLE = {
    "Dense": (rnnpy.Dense, dict(in_features=2, out_features=3),
              {"in_features": BAD["int+"], "out_features": BAD["int+"], "bias": BAD["bool"],
               "dtype": BAD["dtype"], "seed": BAD["seed"]}),
    "Embedding": (rnnpy.Embedding, dict(num_embeddings=5, embedding_dim=3),
                  {"num_embeddings": BAD["int+"], "embedding_dim": BAD["int+"],
                   "dtype": BAD["dtype"], "seed": BAD["seed"], "mask_zero": BAD["bool"],
                   "padding_idx": ["1", 1.0, True, 5, -6, [1]]}),
    "LastStep": (rnnpy.LastStep, {}, {"time_major": BAD["bool"], "dtype": BAD["dtype"]}),
    "Dropout": (rnnpy.Dropout, {}, {"p": BAD["prob"], "dtype": BAD["dtype"], "seed": BAD["seed"]}),
    "RNN": (rnnpy.RNN, dict(input_size=2, hidden_size=3),
            dict(RECURRENT, nonlinearity=choice("sigmoid", "TANH", None))),
    "LSTM": (rnnpy.LSTM, dict(input_size=2, hidden_size=3),
             dict(RECURRENT, **GATED, peephole=BAD["bool"], layer_norm=BAD["bool"],
                  proj_size=["1", 1.0, True, -1, 3, None])),
    "GRU": (rnnpy.GRU, dict(input_size=2, hidden_size=3), dict(RECURRENT, **GATED)),
    "EarlyStopping": (rnnpy.EarlyStopping, {},
                      {"monitor": BAD["str"], "patience": BAD["int0"] + [1.5],
                       "min_delta": BAD["real0"], "mode": choice("MIN", None),
                       "restore_best": BAD["bool"], "restore_best_weights": BAD["bool"][:-3]}),
    "ModelCheckpoint": (rnnpy.ModelCheckpoint, dict(path="m.npz"),
                        {"path": [None, 5, 1.5, "", "a\0b", ["m.npz"]],
                         "monitor": BAD["str"], "mode": choice("MAX", None),
                         "save_best_only": BAD["bool"]}),
    "SGD": (lambda **k: optim.SGD(_dense(), **k), dict(lr=0.1),
            {"lr": ["0.1", None, -1.0, NAN, True], "momentum": ["0.9", None, 1.0, -0.5],
             "nesterov": ["yes", None, 2, 0.5], "weight_decay": ["0", -1.0, None]}),
    "Adam": (lambda **k: optim.Adam(_dense(), **k), {},
             {"lr": ["0.1", None, -1.0, NAN, True], "betas": ["0.9", 0.9, (0.9,), None, ("a", 0.9)],
              "eps": ["1e-8", -1.0, None], "amsgrad": ["yes", None, 2]}),
    "StepLR": (lambda **k: optim.StepLR(optim.SGD(_dense(), lr=0.1), **k), dict(step_size=2),
               {"step_size": BAD["int+"], "gamma": ["0.1", None, -1.0, True]}),
    "ReduceLROnPlateau": (lambda **k: optim.ReduceLROnPlateau(optim.SGD(_dense(), lr=0.1), **k), {},
                          {"mode": choice("MIN"), "threshold_mode": choice("REL"),
                           "patience": BAD["int0"] + [1.5], "cooldown": BAD["int0"],
                           "factor": ["0.1", 1.0, None]}),
    "Vocabulary": (Vocabulary, dict(corpus="abca"),
                   {"min_count": ["1", 1.0, 0, True, None], "max_size": ["3", 3.0, -1, True],
                    "pad": [None, 5, "<unk>"], "sep": [5, b" ", [" "]]}),
    "Sampler": (lambda **k: Sampler(rnnpy.Sequential(rnnpy.Embedding(5, 3), rnnpy.LSTM(3, 4),
                                                     rnnpy.Dense(4, 5)), **k), {},
                {"temperature": ["1", None, -1.0, NAN, True], "top_k": ["2", 2.0, 0, True],
                 "seed": BAD["seed"]}),
}
CASES = [(c, a, i) for c, (_, _, args) in TABLE.items() for a, bad in args.items()
         for i in range(len(bad))]


@pytest.mark.parametrize("cls,arg,i", CASES)
def test_a_wrong_argument_is_refused_naming_it(cls, arg, i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, base, args = TABLE[cls]
    value = args[arg][i]
    with pytest.raises((TypeError, ValueError)) as e:
        make(**dict(base, **{arg: value}))
    assert str(e.value).startswith(arg), (arg, value, str(e.value))


@pytest.mark.parametrize("cls", list(TABLE))
def test_the_valid_base_arguments_build(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, base, _ = TABLE[cls]
    make(**base)


def test_np_bool_and_np_integer_are_accepted():
    d = rnnpy.Dense(np.int64(2), np.int32(3), bias=np.bool_(False))
    assert d.use_bias is False and d.num_params == 6
    g = rnnpy.LSTM(np.int64(2), 3, bidirectional=np.True_, time_major=np.False_)
    assert g.bidirectional is True and g.time_major is False
    assert rnnpy.LastStep(time_major=np.True_).time_major is True


@pytest.mark.parametrize("cls,key,value", [
    ("Dense", "bias", "yes"), ("Dense", "bias", 1), ("Dense", "in_features", 2.0),
    ("LastStep", "time_major", "no"), ("Dropout", "p", "0.5"), ("LSTM", "compute_dtype", "bf16"),
])
def test_a_model_file_with_a_wrong_config_type_is_refused(tmp_path, cls, key, value):
    model = {"Dense": lambda: rnnpy.Dense(2, 2, seed=0), "LastStep": rnnpy.LastStep,
             "Dropout": rnnpy.Dropout, "LSTM": lambda: rnnpy.LSTM(2, 3, seed=0)}[cls]()
    p, q = str(tmp_path / "m.npz"), str(tmp_path / "bad.npz")
    rnnpy.save(model, p)
    with zipfile.ZipFile(p) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(q, "w") as z:
        for n, data in members:
            if n == io.HEADER + ".npy":
                header = json.loads(np.load(p)[io.HEADER].tobytes())
                header["model"]["config"][key] = value
                import io as _io
                b = _io.BytesIO()
                np.lib.format.write_array(b, np.frombuffer(json.dumps(header).encode(), np.uint8))
                data = b.getvalue()
            z.writestr(n, data)
    with pytest.raises(io.ModelFileError, match=f"cannot build {cls}: {key}: expected") as e:
        rnnpy.load(q)
    assert str(e.value).startswith(f"path: {q!r}: model: cannot build {cls}: {key}: expected")
