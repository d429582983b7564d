"""rnnpy.sample / generate / Sampler and Vocabulary: prompts as text or ids,
batches of prompts of different lengths, temperature, top-k, seeds, step by
step with the state carried; and the softmax helper."""
import numpy as np
import pytest

import rnnpy
from rnnpy.tools.generate import Sampler

F64 = "float64"
TEXT = "anna karenina and the anna of the train " * 5


def lm(vocab_size, seed=0):
    return rnnpy.Sequential(rnnpy.Embedding(vocab_size, 6, dtype=F64, seed=seed),
                            rnnpy.LSTM(6, 12, dtype=F64, seed=seed + 1),
                            rnnpy.Dense(12, vocab_size, dtype=F64, seed=seed + 2))


def test_vocabulary_pad_unk_round_trip():
    v = rnnpy.Vocabulary(TEXT)
    assert v.tokens[:2] == ["<pad>", "<unk>"] and v.pad_id == 0 and v.unk_id == 1
    assert v.tokens[2:5] == ["a", "n", " "] and v.tokens[5] == "e"   # most frequent first, ties by first sight
    ids = v.encode("anna!")
    assert ids[-1] == v.unk_id and v.decode(ids[:-1]) == "anna"
    batch, lengths = v.encode_batch(["an", "anna"])
    assert batch.shape == (2, 4) and list(lengths) == [2, 4] and list(batch[0, 2:]) == [0, 0]
    assert v.decode(batch[0]) == "an" and v.decode(batch[0], skip_pad=False) == "an<pad><pad>"
    assert rnnpy.Vocabulary.from_config(v.to_config()) == v
    words = rnnpy.Vocabulary([["the", "cat"], ["the", "dog"]], min_count=2)
    assert words.tokens == ["<pad>", "<unk>", "the"] and words.decode(words.encode(["the", "x"])) == "the <unk>"
    with pytest.raises(ValueError, match="^min_count"):
        rnnpy.Vocabulary(TEXT, min_count=0)


def test_sample_text_is_seeded_and_matches_a_manual_loop():
    v = rnnpy.Vocabulary(TEXT)
    model = lm(len(v))
    a = rnnpy.sample(model, "anna ", length=30, vocab=v, temperature=0.8, seed=1)
    b = rnnpy.sample(model, "anna ", length=30, vocab=v, temperature=0.8, seed=1)
    c = rnnpy.sample(model, "anna ", length=30, vocab=v, temperature=0.8, seed=2)
    assert a == b and a != c and a.startswith("anna ") and len(a) == 35
    assert "<unk>" not in a and "<pad>" not in a   # never drawn
    # greedy decoding equals an argmax loop over the full sequence, state recomputed each time
    g = rnnpy.sample(model, "anna ", length=10, vocab=v, temperature=0)
    ids = list(v.encode("anna "))
    for _ in range(10):
        logits, _ = model.forward(np.array([ids]))
        ids.append(2 + int(np.argmax(logits[0, -1, 2:])))   # pad and unk are never drawn
    assert g == v.decode(ids)


def test_batch_of_prompts_of_different_lengths_equals_each_alone():
    v = rnnpy.Vocabulary(TEXT)
    model = lm(len(v))
    both = rnnpy.sample(model, ["anna ", "the train "], length=12, vocab=v, temperature=0)
    alone = [rnnpy.sample(model, p, length=12, vocab=v, temperature=0) for p in ("anna ", "the train ")]
    assert both == alone


def test_ids_in_ids_out_and_top_k():
    model = lm(7)
    out = rnnpy.sample(model, [1, 2, 3], length=5, seed=0)
    assert isinstance(out, np.ndarray) and out.shape == (8,) and list(out[:3]) == [1, 2, 3]
    outs = rnnpy.sample(model, np.array([[1, 2], [3, 4]]), length=4, seed=0)
    assert len(outs) == 2 and all(o.shape == (6,) for o in outs)
    # top_k=1 is greedy whatever the temperature
    k1 = rnnpy.sample(model, [1, 2, 3], length=6, top_k=1, temperature=5.0, seed=3)
    greedy = rnnpy.sample(model, [1, 2, 3], length=6, temperature=0)
    np.testing.assert_array_equal(k1, greedy)
    # top_k=2 only ever draws one of the two most likely tokens at each step
    s = Sampler(model, top_k=2, temperature=10.0, seed=0).feed([1, 2])
    for _ in range(20):
        top2 = set(np.argsort(s.logits[0])[-2:])
        assert int(s.next()[0]) in top2


def test_step_by_step_equals_sample():
    v = rnnpy.Vocabulary(TEXT)
    model = lm(len(v))
    whole = rnnpy.sample(model, "the ", length=15, vocab=v, temperature=0.7, seed=5)
    toks = [int(t[0]) for t in rnnpy.generate(model, "the ", 15, vocab=v, temperature=0.7, seed=5)]
    assert whole == "the " + v.decode(toks)


def test_bad_arguments_are_named():
    v = rnnpy.Vocabulary(TEXT)
    model = lm(len(v))
    with pytest.raises(ValueError, match="^temperature"):
        rnnpy.sample(model, "a", vocab=v, temperature=-1)
    with pytest.raises(ValueError, match="^top_k"):
        rnnpy.sample(model, "a", vocab=v, top_k=0)
    with pytest.raises(ValueError, match="^length"):
        rnnpy.sample(model, "a", length=-1, vocab=v)
    with pytest.raises(ValueError, match="^vocab: expected a vocabulary"):
        rnnpy.sample(model, "a")
    with pytest.raises(ValueError, match="^prime: expected at least one token"):
        rnnpy.sample(model, ["a", ""], vocab=v)
    with pytest.raises(TypeError, match="^prime: expected"):
        rnnpy.sample(model, np.array([0.5, 1.0]))


def test_softmax_helper():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    p = rnnpy.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(rnnpy.softmax(z[0], temperature=2.0), rnnpy.softmax(z[0] / 2))
