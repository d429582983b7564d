"""Demo data: the temporal-order task at all five levels, the echo task and its
chunks, and text loading for char-rnn. Every generated sequence is checked
symbol by symbol against the task's definition."""
import os

import numpy as np
import pytest

from rnnpy import data as D
from rnnpy.demos import echo as E
from rnnpy.demos import temporal_order as TO
from rnnpy.demos import text as TX

from rnnpy.demos.char_rnn import DEFAULT_TEXT

# a real corpus: $RNNPY_TEXT when set (CI points it at the full novel), else the
# opening of Anna Karenina shipped with rnnpy
ANNA = os.environ.get("RNNPY_TEXT") or DEFAULT_TEXT


# ---------------------------------------------------------------- temporal order

def test_symbols_classes_levels():
    assert TO.SYMBOLS == ["X", "Y", "a", "b", "c", "d", "B", "E"]
    assert TO.CLASSES == ["Q", "R", "S", "U"]
    assert TO.LEVELS == {
        "easy": ((7, 9), (1, 3), (4, 6)),
        "normal": ((30, 41), (2, 6), (20, 28)),
        "moderate": ((60, 81), (10, 21), (45, 55)),
        "hard": ((100, 111), (10, 21), (50, 61)),
        "nightmare": ((300, 501), (10, 81), (250, 291)),
    }
    assert TO.LEVELS["hard"].t2 == (50, 61)


def check_batch(gen, x, y, lengths):
    """Every sequence of the batch satisfies the task's definition."""
    lv = gen.level
    T = lv.length[1]
    B = x.shape[0]
    assert x.shape == (B, T, 8) and x.dtype == np.float32
    assert y.shape == (B,) and y.dtype == np.int64
    assert lengths.shape == (B,) and lengths.dtype == np.int64
    assert np.all((lengths >= lv.length[0]) & (lengths < lv.length[1]))
    row_sum = x.sum(axis=2)
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    for b in range(B):
        n = int(lengths[b])
        if gen.padding == "pre":
            pad, seq = row_sum[b, :T - n], x[b, T - n:]
        else:
            pad, seq = row_sum[b, n:], x[b, :n]
        assert np.all(pad == 0)
        assert np.all(seq.sum(axis=1) == 1)              # one-hot, no zero rows inside
        ids = seq.argmax(axis=1)
        assert ids[0] == 6 and ids[-1] == 7              # B ... E
        assert np.all((ids[1:-1] != 6) & (ids[1:-1] != 7))
        xy = np.flatnonzero(ids <= 1)                    # positions of X or Y
        assert len(xy) == 2
        t1, t2 = xy
        assert lv.t1[0] <= t1 < lv.t1[1] and lv.t2[0] <= t2 < lv.t2[1]
        assert y[b] == 2 * ids[t1] + ids[t2]             # XX Q, XY R, YX S, YY U
        s = gen.decode(x[b])
        assert len(s) == n and s[0] == "B" and s[-1] == "E"
        assert s[t1] + s[t2] == ["XX", "XY", "YX", "YY"][y[b]]
        assert TO.TemporalOrder.label(y[b]) == TO.CLASSES[y[b]]


@pytest.mark.parametrize("level", list(TO.LEVELS))
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_every_level_and_padding(level, padding):
    gen = TO.TemporalOrder(level, batch_size=16, seed=11, padding=padding)
    assert gen.max_length == TO.LEVELS[level].length[1]
    for _ in range(3):
        check_batch(gen, *gen.batch())


def test_pre_and_post_hold_the_same_sequences():
    xa, ya, la = TO.TemporalOrder("normal", 8, seed=5, padding="pre").batch()
    xb, yb, lb = TO.TemporalOrder("normal", 8, seed=5, padding="post").batch()
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(la, lb)
    T = xa.shape[1]
    for b in range(8):
        n = la[b]
        np.testing.assert_array_equal(xa[b, T - n:], xb[b, :n])
    assert np.all(xa[:, -1, 7] == 1)                     # pre: every sequence ends on the last step
    assert np.all(xb[:, 0, 6] == 1)                      # post: every sequence starts on step 0


def test_easy_padding_in_front_and_lengths_post():
    gen = TO.TemporalOrder("easy", batch_size=64, seed=2)           # padding="pre" by default
    x, y, lengths = gen.batch()
    assert x.shape == (64, 9, 8)
    short = lengths == 7
    assert short.any() and (~short).any()                          # both lengths 7 and 8 occur
    # padded to the exclusive bound 9, as the course: two zero rows before a
    # length-7 sequence, one before a length-8 one
    assert np.all(x[short, :2] == 0) and np.all(x[short, 2, 6] == 1)
    assert np.all(x[~short, 0] == 0) and np.all(x[~short, 1, 6] == 1)


def test_ranges_covered_and_classes_uniform():
    gen = TO.TemporalOrder("normal", batch_size=100, seed=0, padding="post")
    x, y, lengths = gen.dataset(40)                                # 4000 sequences
    assert x.shape == (4000, 41, 8) and y.shape == (4000,) and lengths.shape == (4000,)
    check_batch(gen, x[:200], y[:200], lengths[:200])
    freq = np.bincount(y, minlength=4) / len(y)
    np.testing.assert_allclose(freq, 0.25, atol=0.03)
    assert set(lengths.tolist()) == set(range(30, 41))
    ids = x.argmax(axis=2)
    is_xy = (ids <= 1) & (x.sum(axis=2) > 0)
    pos = [np.flatnonzero(r) for r in is_xy]
    assert {int(p[0]) for p in pos} == set(range(2, 6))
    assert {int(p[1]) for p in pos} == set(range(20, 28))
    # the first X/Y is X for Q and R, Y for S and U
    first = np.array([ids[b, p[0]] for b, p in enumerate(pos)])
    np.testing.assert_array_equal(first, y // 2)


def test_seeded_and_fresh_batches():
    a = TO.TemporalOrder("moderate", 4, seed=3)
    b = TO.TemporalOrder("moderate", 4, seed=3)
    xa, xb = a.batch()[0], b.batch()[0]
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(a.batch()[0], xa)                    # next batch is new
    assert not np.array_equal(TO.TemporalOrder("moderate", 4, seed=4).batch()[0], xa)


def test_epoch_length_and_iteration():
    gen = TO.TemporalOrder("easy", batch_size=32, seed=0)
    assert len(gen) == 31                                          # 1000 sequences per epoch
    batches = list(gen)
    assert len(batches) == 31 and batches[0][0].shape == (32, 9, 8)


def test_decode_known_sequence():
    ids = [6, 3, 0, 4, 5, 1, 2, 7]
    x = np.zeros((10, 8), dtype=np.float32)
    x[np.arange(2, 10), ids] = 1                                   # two padding rows in front
    assert TO.TemporalOrder.decode(x) == "BbXcdYaE"


@pytest.mark.parametrize("call, match", [
    (lambda: TO.TemporalOrder("impossible"), r"^difficulty: expected one of 'easy', 'normal'"),
    (lambda: TO.TemporalOrder("easy", padding="left"), r"^padding: expected 'pre' or 'post', got 'left'$"),
    (lambda: TO.TemporalOrder("easy", batch_size=0), r"^batch_size: expected a positive integer, got 0$"),
    (lambda: TO.TemporalOrder("easy", seed=-2), r"^seed: expected None or a non-negative integer"),
    (lambda: TO.TemporalOrder("easy").dataset(0), r"^n_batches: expected a positive integer, got 0$"),
    (lambda: TO.TemporalOrder.decode(np.zeros((5, 7))), r"^x_row: expected shape \(T, 8\), got \(5, 7\)$"),
    (lambda: TO.TemporalOrder.label(4), r"^y: expected a class id in \[0, 4\), got 4$"),
])
def test_temporal_order_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- echo

def test_echo_delay_exact_and_bernoulli():
    x, y = E.echo_data(seed=0)                                     # course defaults
    assert x.shape == y.shape == (5, 20000) and x.dtype == y.dtype == np.float32
    assert set(np.unique(x).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(y[:, 3:], x[:, :-3])
    np.testing.assert_array_equal(y[:, :3], 0)
    assert abs(x.mean() - 0.5) < 0.01
    assert np.all(np.abs(x.mean(axis=1) - 0.5) < 0.02)
    assert abs(np.mean(x[:, 1:] == x[:, :-1]) - 0.5) < 0.01        # no serial pattern
    assert not np.array_equal(x[0], x[1])                          # rows are independent


@pytest.mark.parametrize("step", [0, 1, 7])
def test_echo_other_steps(step):
    x, y = E.echo_data(series_length=50, batch_size=2, echo_step=step, seed=1)
    for t in range(50):
        np.testing.assert_array_equal(y[:, t], x[:, t - step] if t >= step else 0)


def test_echo_seeded():
    a, _ = E.echo_data(100, 3, seed=9)
    b, _ = E.echo_data(100, 3, seed=9)
    c, _ = E.echo_data(100, 3, seed=10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("S, L", [(20000, 20), (45, 20), (7, 10)])
def test_echo_chunks_cover_series_exactly(S, L):
    x, y = E.echo_data(series_length=S, batch_size=5, echo_step=3 if S > 3 else 0, seed=2)
    chunks = list(E.echo_chunks(x, y, truncated_length=L))
    assert len(chunks) == E.num_chunks(S, L) == -(-S // L)
    for k, (xc, yc) in enumerate(chunks):
        width = min(L, S - k * L)
        assert xc.shape == yc.shape == (5, width, 1)
        assert xc.dtype == yc.dtype == np.float32
        np.testing.assert_array_equal(xc[..., 0], x[:, k * L:k * L + width])
        np.testing.assert_array_equal(yc[..., 0], y[:, k * L:k * L + width])
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks], axis=1)[..., 0], x)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks], axis=1)[..., 0], y)


@pytest.mark.parametrize("call, match", [
    (lambda: E.echo_data(series_length=0), r"^series_length: expected a positive integer, got 0$"),
    (lambda: E.echo_data(batch_size=0), r"^batch_size: expected a positive integer, got 0$"),
    (lambda: E.echo_data(10, echo_step=10), r"^echo_step: expected an integer in \[0, series_length\) = \[0, 10\), got 10$"),
    (lambda: E.echo_data(10, echo_step=-1), r"^echo_step: expected an integer in \[0, series_length\)"),
    (lambda: E.echo_data(10, echo_step=1.5), r"^echo_step: expected an integer"),
    (lambda: E.echo_data(10, seed="x"), r"^seed: expected None or a non-negative integer"),
    (lambda: E.echo_chunks(np.zeros((2, 8)), np.zeros((2, 8)), 0), r"^truncated_length: expected a positive integer, got 0$"),
    (lambda: E.echo_chunks(np.zeros(8), np.zeros(8)), r"^x: expected shape \(B, S\), got \(8,\)$"),
    (lambda: E.echo_chunks(np.zeros((2, 8)), np.zeros((2, 7))), r"^y: expected shape \(B, S\) = \(2, 8\) \(as x\), got \(2, 7\)$"),
])
def test_echo_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------- text

def test_load_text_and_char_batches(tmp_path):
    p = tmp_path / "tiny.txt"
    text = "hello world, héllo wörld\n" * 4
    p.write_text(text, encoding="utf-8")
    assert TX.load_text(p) == text
    assert TX.load_text(str(p), max_chars=7) == "hello w"
    vocab = D.CharVocab(text)
    ids = vocab.encode(text)
    cb = TX.char_batches(ids, batch_size=4, seq_len=5)
    assert len(cb) == 5                                            # 100 chars -> (4, 25) -> 5 windows
    xs = np.concatenate([x for x, _ in cb], axis=1)
    ys = np.concatenate([y for _, y in cb], axis=1)
    assert xs.shape == (4, 25)
    assert vocab.decode(xs.ravel()) == text
    assert vocab.decode(ys.ravel()[:-1]) == text[1:]


def test_load_real_corpus_prefix():
    text = TX.load_text(ANNA, max_chars=5000)
    assert len(text) == 5000 and text.startswith("Chapter 1")
    v = D.CharVocab(text)
    assert v.decode(v.encode(text)) == text


def test_load_text_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=r"^path: no such file: .*nope\.txt"):
        TX.load_text(missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"^path: the file .*empty\.txt' is empty$"):
        TX.load_text(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^path: .*latin\.txt' is not UTF-8 text"):
        TX.load_text(latin)
    with pytest.raises(IsADirectoryError, match=r"^path: expected a text file"):
        TX.load_text(tmp_path)
    with pytest.raises(ValueError, match=r"^max_chars: expected a positive integer, got 0$"):
        TX.load_text(empty, max_chars=0)
    with pytest.raises(ValueError, match=r"^seq_len: expected a positive integer, got 0$"):
        TX.char_batches(np.arange(10), 2, 0)
