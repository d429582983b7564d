"""The one conversion of user arrays (rnnpy._validate.array) and the entry
points that go through it: a ragged nested list, an integer beyond int64 or a
size no array can have is refused with a message that starts with the
argument's name and says what was expected, at every entry point; the
entries the sweep in test_bad_input_sweep.py does not reach are tried here.
"""
import re

import numpy as np
import pytest

import rnnpy
from rnnpy import _validate, data, losses, optim
from rnnpy.tools.generate import Sampler, Vocabulary

RAGGED = [[1, 2], [3]]
EXPECTED_ROWS = "expected an array-like of equal-length rows"


def _refused(fn, name, exc=ValueError, what=EXPECTED_ROWS):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    assert re.match(rf"^{re.escape(name)}: ", msg), msg
    assert what in msg, msg
    return msg


# -- the conversion itself ---------------------------------------------------------
@pytest.mark.parametrize("obj,where", [
    ([[1, 2], [3]], "x[0] has length 2, x[1] length 1"),
    (([1, 2], (3,)), "x[0] has length 2, x[1] length 1"),
    ([[1, 2], [3, 4], [5, 6, 7]], "x[0] has length 2, x[2] length 3"),
    ([[[1, 2], [3, 4]], [[1], [2, 3]]], "x[0][0] has length 2, x[1][0] length 1"),
    ([[[1, 2]], [[1]]], "x[0][0] has length 2, x[1][0] length 1"),
    ([1, [2]], "x[1] is a sequence, x[0] is not"),
    ([np.ones(2), np.ones(3)], "x[0] has length 2, x[1] length 3"),
])
def test_array_refuses_ragged_nesting_saying_where(obj, where):
    msg = _refused(lambda: _validate.array(obj, "x"), "x")
    assert where in msg


@pytest.mark.parametrize("obj,bad", [(2 ** 70, 2 ** 70), ([2 ** 70, 1], 2 ** 70),
                                     ([[1, 2], [3, -2 ** 64]], -2 ** 64), ([2 ** 64], 2 ** 64)])
def test_array_refuses_integers_beyond_int64(obj, bad):
    msg = _refused(lambda: _validate.array(obj, "ids"), "ids",
                   what="expected integers in the int64 range")
    assert f"got {bad} at flat index" in msg


@pytest.mark.parametrize("obj,dtype", [([[1, 2], [3, 4]], np.int64), ([2 ** 63 - 1, -2 ** 63], np.int64),
                                       (1.5, np.float64), ([True, False], np.bool_), ([], np.float64)])
def test_array_keeps_ordinary_values(obj, dtype):
    arr = _validate.array(obj, "x")
    assert arr.dtype == dtype
    np.testing.assert_array_equal(arr, np.asarray(obj))


def test_array_returns_an_ndarray_itself():
    a = np.arange(6).reshape(2, 3)
    assert _validate.array(a, "x") is a


def test_as_float_array_keeps_a_scalar_a_scalar():
    out = _validate.as_float_array(1.5, "x", np.dtype(np.float32))
    assert out.shape == () and out.dtype == np.float32 and float(out) == 1.5


# -- sizes set by an argument ----------------------------------------------------------
@pytest.mark.parametrize("maxlen", [2 ** 70, 2 ** 62])
def test_pad_sequences_names_maxlen_when_no_array_can_hold_it(maxlen):
    _refused(lambda: data.pad_sequences([[1, 2], [3]], maxlen=maxlen), "maxlen",
             what="expected a size")


def test_pad_sequences_still_names_a_bad_value():
    _refused(lambda: data.pad_sequences([[1, 2], [3]], value="x"), "value", TypeError,
             what="expected a value of dtype int64")


@pytest.mark.parametrize("n", [2 ** 70, 2 ** 62])
def test_one_hot_names_num_classes_when_no_array_can_hold_it(n):
    _refused(lambda: data.one_hot([0, 1], n), "num_classes", what="expected a size")


# -- entries beyond the sweep --------------------------------------------------------
def _classifier():
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, dtype="float64"), rnnpy.LastStep(dtype="float64"),
                            rnnpy.Dense(4, 2, dtype="float64"))


def test_predict_refuses_an_empty_batch():
    model = _classifier()
    _refused(lambda: rnnpy.predict(model, np.zeros((0, 5, 3))), "x",
             what="expected a batch of at least one row")


def test_predict_names_ragged_lengths():
    model = _classifier()
    _refused(lambda: rnnpy.predict(model, np.ones((2, 5, 3)), lengths=RAGGED), "lengths")


def test_predict_names_a_ragged_x():
    model = _classifier()
    _refused(lambda: rnnpy.predict(model, [[[1.0, 2, 3]], [[1.0, 2, 3], [4, 5, 6]]]), "x")


def test_evaluate_names_a_ragged_x():
    model = _classifier()
    _refused(lambda: rnnpy.evaluate(model, ([[[1.0, 2, 3]], [[1.0, 2, 3], [4, 5, 6]]], [0, 1]),
                                    loss="cross_entropy"), "data[0]")


def test_fit_names_a_ragged_y():
    model = _classifier()
    _refused(lambda: rnnpy.fit(model, (np.ones((2, 5, 3)), RAGGED), loss="cross_entropy",
                               optimizer=optim.SGD(model, lr=0.1), progress=False), "train[1]")


@pytest.mark.parametrize("class_weight,exc,what", [
    (RAGGED, ValueError, EXPECTED_ROWS), (["a", "b"], TypeError, "expected an array of real numbers")])
def test_fit_names_a_bad_class_weight(class_weight, exc, what):
    model = _classifier()
    _refused(lambda: rnnpy.fit(model, (np.ones((2, 5, 3)), [0, 1]), loss="cross_entropy",
                               optimizer=optim.SGD(model, lr=0.1), progress=False,
                               class_weight=class_weight), "class_weight", exc, what)


@pytest.mark.parametrize("lengths,what", [(RAGGED, EXPECTED_ROWS),
                                          ([2 ** 70, 1], "expected integers in the int64 range")])
def test_recurrent_layer_names_bad_lengths(lengths, what):
    layer = rnnpy.LSTM(3, 4)
    _refused(lambda: layer.forward(np.ones((2, 5, 3), np.float32), lengths=lengths), "lengths",
             what=what)


@pytest.mark.parametrize("ids,what", [(RAGGED, EXPECTED_ROWS),
                                      ([2 ** 70, 1], "expected integers in the int64 range")])
def test_embedding_names_bad_ids(ids, what):
    emb = rnnpy.Embedding(5, 3)
    _refused(lambda: emb.forward(ids), "ids", what=what)


def test_embedding_lengths_of_names_ragged_ids():
    emb = rnnpy.Embedding(5, 3, padding_idx=0)
    if emb.pad_token is None:
        pytest.skip("this Embedding derives no lengths")
    _refused(lambda: emb.lengths_of(RAGGED), "ids")


def test_loss_weights_and_metrics_name_ragged_input():
    logits = np.zeros((2, 2, 3))
    _refused(lambda: losses.softmax_cross_entropy(logits, np.zeros((2, 2), int), weight=None,
                                                  sample_weight=RAGGED), "sample_weight")


def _sampler():
    model = rnnpy.Sequential(rnnpy.Embedding(5, 3), rnnpy.LSTM(3, 4), rnnpy.Dense(4, 5))
    return Sampler(model, seed=0)


@pytest.mark.parametrize("prompts,name,what", [
    ([1, [2]], "prompts", EXPECTED_ROWS),
    ([[1, [2]], [3]], "prompts[0]", EXPECTED_ROWS),
    ([2 ** 70, 1], "prompts", "expected integers in the int64 range")])
def test_sampler_names_bad_prompts(prompts, name, what):
    _refused(lambda: _sampler().feed(prompts), name, what=what)


def test_vocabulary_encode_names_a_token_that_is_no_str():
    vocab = Vocabulary("a b c".split())
    _refused(lambda: vocab.encode(["a", ["b"]]), "tokens[1]", TypeError, what="expected a str token")


@pytest.mark.parametrize("decode", [lambda ids: data.CharVocab("abc").decode(ids),
                                    lambda ids: Vocabulary("a b c".split()).decode(ids)])
def test_decode_names_ragged_ids(decode):
    _refused(lambda: decode(RAGGED), "ids")


def test_data_helpers_name_ragged_input():
    _refused(lambda: list(data.iterate_minibatches(np.ones(3), [[1, 2], [3], [4]], batch_size=2)),
             "arrays[1]")
    _refused(lambda: data.batchify(RAGGED, 1), "sequence")
    _refused(lambda: list(data.windows(np.ones((2, 5)), 2, next_value=RAGGED)), "next_value")
    _refused(lambda: data.pad_sequences([[[1, 2], [3]], [[1, 2]]]), "sequences[0]")


def test_load_state_dict_names_a_ragged_parameter():
    dense = rnnpy.Dense(2, 2)
    _refused(lambda: dense.load_state_dict({"weight": [[1.0, 2.0], [3.0]], "bias": [0.0, 0.0]}),
             "state['weight']")


# -- Dropout ---------------------------------------------------------------------------
@pytest.mark.parametrize("x", [1.5, 0, -1, float("nan"), float("inf")])
def test_dropout_gives_a_scalar_back_for_a_scalar(x):
    out = rnnpy.Dropout(0.5, seed=0).forward(x)
    assert np.shape(out) == ()


def test_dropout_drops_an_infinite_entry_to_zero():
    d = rnnpy.Dropout(0.5, seed=0)
    out = d.forward(np.full(64, np.inf, np.float32))
    assert set(np.unique(out).tolist()) == {0.0, np.inf}


@pytest.mark.parametrize("kwargs,name", [(dict(x=[[1.0, 2, 3], [1.0]]), "x"),
                                         (dict(x=np.ones((5, 3)), lengths=[[1], [2, 3]]), "lengths")])
def test_hidden_states_names_ragged_input(kwargs, name):
    from rnnpy.tools import plot

    model = rnnpy.Sequential(rnnpy.LSTM(3, 4), rnnpy.Dense(4, 2))
    _refused(lambda: plot.hidden_states(model, **kwargs), name)


@pytest.mark.parametrize("call", [lambda m, p: rnnpy.sample(m, p, 2),
                                  lambda m, p: list(rnnpy.generate(m, p, 2))])
@pytest.mark.parametrize("prime,name,exc,what", [
    ([1, [2]], "prime", ValueError, EXPECTED_ROWS),
    ([[1, [2]], [3]], "prime[0]", ValueError, EXPECTED_ROWS),
    ([[1, 2], []], "prime", ValueError, "expected at least one token"),
    (np.ones(3), "prime", TypeError, "expected a str, a list of str, or integer ids")])
def test_sample_and_generate_name_their_prime(call, prime, name, exc, what):
    """sample and generate take prime; their refusals name it, not Sampler.feed's prompts."""
    model = rnnpy.Sequential(rnnpy.Embedding(5, 3), rnnpy.LSTM(3, 4), rnnpy.Dense(4, 5))
    _refused(lambda: call(model, prime), name, exc, what)


def test_softmax_names_ragged_logits():
    _refused(lambda: rnnpy.softmax([[1.0, 2.0], [3.0]]), "logits")


@pytest.mark.parametrize("run", ["fit", "evaluate"])
def test_batches_given_as_a_sequence_name_a_ragged_x(run):
    model = _classifier()
    good = (np.ones((2, 5, 3)), np.zeros(2, int))
    batches = [good, ([[[1.0, 2, 3]], [[1.0, 2, 3], [4, 5, 6]]], [0, 1])]
    if run == "fit":
        call = lambda: rnnpy.fit(model, batches, loss="cross_entropy",  # noqa: E731
                                 optimizer=optim.SGD(model, lr=0.1), progress=False)
    else:
        call = lambda: rnnpy.evaluate(model, batches, loss="cross_entropy")  # noqa: E731
    _refused(call, "x")
