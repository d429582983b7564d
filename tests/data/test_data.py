"""rnnpy.data: sequence batching (the seed's 1..12 example), padding, one-hot,
splits, minibatches and the character vocabulary, with exact values; bad
arguments raise errors that name them."""
import json

import numpy as np
import pytest

from rnnpy import data as D


# ---------------------------------------------------------------- sequence batching

def test_seed_example_verbatim():
    # [1..12], batch size 2, sequence length 3: rows [1..6] and [7..12];
    # first batch = first three values of each row, then the next three.
    seq = np.arange(1, 13)
    rows = D.batchify(seq, 2)
    np.testing.assert_array_equal(rows, [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    got = list(D.windows(rows, 3))
    assert len(got) == 2 == D.num_windows(rows, 3)
    np.testing.assert_array_equal(got[0][0], [[1, 2, 3], [7, 8, 9]])
    np.testing.assert_array_equal(got[1][0], [[4, 5, 6], [10, 11, 12]])
    # targets: the next element of the original sequence; 6 -> 7 crosses rows,
    # the last one (after 12) wraps to the first element.
    np.testing.assert_array_equal(got[0][1], [[2, 3, 4], [8, 9, 10]])
    np.testing.assert_array_equal(got[1][1], [[5, 6, 7], [11, 12, 1]])


def test_sequence_batches_same_as_seed_and_reiterable():
    sb = D.sequence_batches(list(range(1, 13)), batch_size=2, seq_len=3)
    assert len(sb) == 2 and sb.batch_size == 2
    for _ in range(2):  # one pass per epoch
        (x0, y0), (x1, y1) = list(sb)
        np.testing.assert_array_equal(x0, [[1, 2, 3], [7, 8, 9]])
        np.testing.assert_array_equal(x1, [[4, 5, 6], [10, 11, 12]])
        np.testing.assert_array_equal(y1, [[5, 6, 7], [11, 12, 1]])


def test_sequence_batches_uses_dropped_element_as_last_target():
    # 13 elements: batchify drops 13, which is the true successor of 12.
    (x0, y0), (x1, y1) = list(D.sequence_batches(np.arange(1, 14), 2, 3))
    np.testing.assert_array_equal(x1, [[4, 5, 6], [10, 11, 12]])
    np.testing.assert_array_equal(y1, [[5, 6, 7], [11, 12, 13]])


def test_every_target_is_the_next_element():
    seq = np.arange(100, 200)                      # 100 elements, remainder 2 with B = 7
    sb = D.sequence_batches(seq, 7, 4)
    n = 100 // 7
    assert sb.data.shape == (7, n)
    xs = np.concatenate([x for x, _ in sb], axis=1)
    ys = np.concatenate([y for _, y in sb], axis=1)
    np.testing.assert_array_equal(xs.ravel(), seq[:7 * n])
    np.testing.assert_array_equal(ys.ravel(), seq[1:7 * n + 1])


def test_short_last_window_and_drop_last():
    rows = D.batchify(np.arange(20), 2)            # (2, 10)
    full = list(D.windows(rows, 4))
    assert [x.shape for x, _ in full] == [(2, 4), (2, 4), (2, 2)]
    np.testing.assert_array_equal(full[2][0], [[8, 9], [18, 19]])
    np.testing.assert_array_equal(full[2][1], [[9, 10], [19, 0]])
    assert D.num_windows(rows, 4) == 3 and D.num_windows(10, 4) == 3
    dropped = list(D.windows(rows, 4, drop_last=True))
    assert len(dropped) == 2 == D.num_windows(rows, 4, drop_last=True)
    assert len(D.sequence_batches(np.arange(20), 2, 4, drop_last=True)) == 2


def test_batchify_drops_remainder_and_keeps_feature_axes():
    np.testing.assert_array_equal(D.batchify(np.arange(11), 3), [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    feats = np.arange(24).reshape(12, 2)
    rows = D.batchify(feats, 3)
    assert rows.shape == (3, 4, 2)
    np.testing.assert_array_equal(rows[1, 0], [8, 9])
    (x, y), = list(D.windows(rows, 4))
    np.testing.assert_array_equal(y[0, 3], [8, 9])      # row 0's last target = row 1's first
    np.testing.assert_array_equal(y[2, 3], [0, 1])      # wraps


@pytest.mark.parametrize("call, match", [
    (lambda: D.batchify(np.arange(3), 4), r"^sequence: expected at least batch_size = 4 elements, got 3$"),
    (lambda: D.batchify(np.arange(10), 0), r"^batch_size: expected a positive integer, got 0$"),
    (lambda: D.batchify("hello", 2), r"^sequence: expected an array-like of tokens, got str"),
    (lambda: D.batchify(5, 2), r"^sequence: expected a sequence"),
    (lambda: D.windows(np.zeros((2, 6)), 0), r"^seq_len: expected a positive integer, got 0$"),
    (lambda: D.windows(np.arange(6), 3), r"^data: expected shape \(B, n, \.\.\.\) from batchify, got \(6,\)$"),
    (lambda: D.windows(np.zeros((2, 6)), 3, next_value=[1, 2]), r"^next_value: expected shape \(\)"),
    (lambda: D.sequence_batches(np.arange(10), 2, -1), r"^seq_len: expected a positive integer, got -1$"),
    (lambda: D.num_windows(-1, 3), r"^data: expected a number of columns >= 0, got -1$"),
])
def test_batching_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- padding

def test_pad_post_and_pre_token_ids():
    seqs = [[1, 2, 3], [4], [5, 6]]
    post, lengths = D.pad_sequences(seqs)
    np.testing.assert_array_equal(post, [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert lengths.dtype == np.int64 and post.dtype.kind == "i"
    pre, lengths_pre = D.pad_sequences(seqs, padding="pre", value=-1)
    np.testing.assert_array_equal(pre, [[1, 2, 3], [-1, -1, 4], [-1, 5, 6]])
    np.testing.assert_array_equal(lengths_pre, [3, 1, 2])


def test_pad_truncation_both_sides():
    seqs = [[1, 2, 3, 4, 5], [6, 7]]
    p, n = D.pad_sequences(seqs, maxlen=3, truncating="post")
    np.testing.assert_array_equal(p, [[1, 2, 3], [6, 7, 0]])
    np.testing.assert_array_equal(n, [3, 2])
    p, n = D.pad_sequences(seqs, maxlen=3, truncating="pre", padding="pre")
    np.testing.assert_array_equal(p, [[3, 4, 5], [0, 6, 7]])
    np.testing.assert_array_equal(n, [3, 2])
    p, n = D.pad_sequences(seqs, maxlen=7)
    assert p.shape == (2, 7)
    np.testing.assert_array_equal(p[1], [6, 7, 0, 0, 0, 0, 0])


def test_pad_vectors_dtype_and_empty():
    a = np.ones((3, 2), dtype=np.float32)
    b = np.full((1, 2), 2.0, dtype=np.float32)
    p, n = D.pad_sequences([a, b, np.zeros((0, 2), np.float32)], padding="pre")
    assert p.shape == (3, 3, 2) and p.dtype == np.float32
    np.testing.assert_array_equal(p[1], [[0, 0], [0, 0], [2, 2]])
    np.testing.assert_array_equal(p[2], np.zeros((3, 2)))
    np.testing.assert_array_equal(n, [3, 1, 0])
    p, _ = D.pad_sequences([[1, 2], []])
    assert p.dtype.kind == "i"                       # an empty list does not force float
    p, _ = D.pad_sequences([[1, 2], [3]], dtype="float64", value=0.5)
    np.testing.assert_array_equal(p, [[1.0, 2.0], [3.0, 0.5]])
    assert p.dtype == np.float64


@pytest.mark.parametrize("kwargs, match", [
    (dict(sequences=[]), r"^sequences: expected at least one sequence, got 0$"),
    (dict(sequences=[[1]], padding="left"), r"^padding: expected 'post' or 'pre', got 'left'$"),
    (dict(sequences=[[1]], truncating="end"), r"^truncating: expected 'post' or 'pre', got 'end'$"),
    (dict(sequences=[[1]], maxlen=0), r"^maxlen: expected a positive integer, got 0$"),
    (dict(sequences=[np.zeros((2, 3)), np.zeros((2, 4))]),
     r"^sequences\[1\]: expected steps of shape \(3,\)"),
    (dict(sequences=[[1], ["a"]]), r"^sequences\[1\]: expected numbers"),
    (dict(sequences="abc"), r"^sequences: expected a list of sequences, got str$"),
])
def test_pad_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        D.pad_sequences(**kwargs)


# ---------------------------------------------------------------- one-hot

def test_one_hot_values_shape_dtype():
    oh = D.one_hot([[0, 2], [1, 1]], 3)
    assert oh.shape == (2, 2, 3) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh, [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]])
    oh64 = D.one_hot(np.array([4]), 5, dtype="float64")
    assert oh64.dtype == np.float64
    np.testing.assert_array_equal(oh64, [[0, 0, 0, 0, 1]])
    assert D.one_hot(2, 4).tolist() == [0, 0, 1, 0]
    assert D.one_hot(np.zeros(0, dtype=int), 3).shape == (0, 3)


@pytest.mark.parametrize("args, kwargs, match", [
    (([0, 3], 3), {}, r"^indices: expected integers in \[0, 3\), got 3 at flat index 1$"),
    (([-1], 3), {}, r"^indices: expected integers in \[0, 3\), got -1 at flat index 0$"),
    (([0.0], 3), {}, r"^indices: expected integers, got dtype float64$"),
    (([0], 0), {}, r"^num_classes: expected a positive integer, got 0$"),
    (([0], 2), {"dtype": "U3"}, r"^dtype: expected a numeric dtype"),
])
def test_one_hot_bad_input(args, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        D.one_hot(*args, **kwargs)


# ---------------------------------------------------------------- splits

def test_train_val_split_sizes_alignment_no_overlap():
    x = np.arange(100) * 10
    y = np.arange(100)
    z = np.arange(200).reshape(100, 2)
    xt, yt, zt, xv, yv, zv = D.train_val_split(x, y, z, val_fraction=0.2, seed=3)
    assert (len(xt), len(xv)) == (80, 20)
    np.testing.assert_array_equal(xt, yt * 10)
    np.testing.assert_array_equal(xv, yv * 10)
    np.testing.assert_array_equal(zv[:, 0], yv * 2)
    assert set(yt.tolist()).isdisjoint(yv.tolist())
    assert sorted(yt.tolist() + yv.tolist()) == list(range(100))
    assert yv.tolist() != list(range(80, 100))       # shuffled


def test_train_val_split_determinism_and_no_shuffle():
    a = D.train_val_split(np.arange(50), seed=7)
    b = D.train_val_split(np.arange(50), seed=7)
    c = D.train_val_split(np.arange(50), seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].tolist() != c[1].tolist()
    assert len(a[1]) == 5
    tr, va = D.train_val_split(list(range(10)), val_fraction=0.3, shuffle=False)
    np.testing.assert_array_equal(tr, range(7))
    np.testing.assert_array_equal(va, [7, 8, 9])
    tr, va = D.train_val_split(np.arange(4), val_fraction=0.0)
    assert len(tr) == 4 and len(va) == 0
    tr, va = D.train_val_split(np.arange(4), val_fraction=0.01)   # at least one row
    assert (len(tr), len(va)) == (3, 1)


def test_split_sequence_contiguous_tail():
    tr, va = D.split_sequence(np.arange(10), 0.2)
    np.testing.assert_array_equal(tr, range(8))
    np.testing.assert_array_equal(va, [8, 9])
    tr, va = D.split_sequence(np.arange(1000), val_fraction=0.1)
    assert (len(tr), len(va)) == (900, 100) and va[0] == 900


@pytest.mark.parametrize("call, match", [
    (lambda: D.train_val_split(np.arange(5), np.arange(4)),
     r"^arrays\[1\]: expected 5 rows along axis 0 \(as arrays\[0\]\), got 4$"),
    (lambda: D.train_val_split(), r"^arrays: expected at least one array, got none$"),
    (lambda: D.train_val_split(np.arange(5), val_fraction=1.0),
     r"^val_fraction: expected a number in \[0, 1\), got 1.0$"),
    (lambda: D.train_val_split(np.arange(1), val_fraction=0.5), r"^arrays: expected enough rows"),
    (lambda: D.train_val_split(np.arange(5), seed=-1), r"^seed: expected None or a non-negative"),
    (lambda: D.split_sequence(np.arange(5), -0.1), r"^val_fraction: expected a number in \[0, 1\)"),
])
def test_split_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- minibatches

def test_iterate_minibatches_in_order():
    x = np.arange(10)
    y = np.arange(10) * 2
    batches = list(D.iterate_minibatches(x, y, batch_size=4, shuffle=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[2][0], [8, 9])
    np.testing.assert_array_equal(batches[2][1], [16, 18])
    assert len(list(D.iterate_minibatches(x, batch_size=4, shuffle=False, drop_last=True))) == 2
    (only,), = list(D.iterate_minibatches(x, batch_size=10, shuffle=False))
    np.testing.assert_array_equal(only, x)


def test_iterate_minibatches_shuffled_covers_all_aligned():
    x = np.arange(23)
    y = -np.arange(23)
    b1 = list(D.iterate_minibatches(x, y, batch_size=5, seed=1))
    b2 = list(D.iterate_minibatches(x, y, batch_size=5, seed=1))
    seen = np.concatenate([b[0] for b in b1])
    assert sorted(seen.tolist()) == list(range(23)) and seen.tolist() != list(range(23))
    for (xa, ya), (xb, yb) in zip(b1, b2):
        np.testing.assert_array_equal(xa, -ya)
        np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("call, match", [
    (lambda: D.iterate_minibatches(np.arange(4), batch_size=0), r"^batch_size: expected a positive integer, got 0$"),
    (lambda: D.iterate_minibatches(np.arange(4), np.arange(3), batch_size=2),
     r"^arrays\[1\]: expected 4 rows"),
])
def test_minibatches_bad_input_raises_at_call(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- vocabulary

def test_char_vocab_round_trip_and_config():
    text = "To be, or not to be: ünïcode ✓"
    v = D.CharVocab(text)
    assert v.chars == sorted(set(text)) and v.size == len(set(text)) == len(v)
    ids = v.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert v.decode(ids) == text
    assert ids[0] == v.chars.index("T")
    cfg = json.loads(json.dumps(v.to_config()))
    w = D.CharVocab.from_config(cfg)
    assert w == v and w.decode(v.encode("not")) == "not"
    np.testing.assert_array_equal(w.encode(text), ids)
    assert v.encode("").shape == (0,)


def test_char_vocab_from_config_keeps_stored_order():
    v = D.CharVocab.from_config({"chars": ["z", "a", "m"]})
    np.testing.assert_array_equal(v.encode("amz"), [1, 2, 0])
    assert v.decode([0, 1, 2]) == "zam"


@pytest.mark.parametrize("call, match", [
    (lambda: D.CharVocab(""), r"^text: expected a non-empty string"),
    (lambda: D.CharVocab(b"abc"), r"^text: expected a str, got bytes$"),
    (lambda: D.CharVocab("abc").encode("abz"), r"^text: character 'z' at index 2 is not in the vocabulary$"),
    (lambda: D.CharVocab("abc").decode([0, 3]), r"^ids: expected integers in \[0, 3\), got 3 at index 1$"),
    (lambda: D.CharVocab("abc").decode([0.5]), r"^ids: expected integers, got dtype float64$"),
    (lambda: D.CharVocab.from_config({"chars": ["a", "a"]}), r"^config: expected unique characters"),
    (lambda: D.CharVocab.from_config({"chars": ["ab"]}), r"^config: expected single characters"),
    (lambda: D.CharVocab.from_config({}), r"^config: expected a dict with a non-empty list 'chars'$"),
])
def test_char_vocab_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
