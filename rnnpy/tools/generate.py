"""Generation from a trained sequence model: a vocabulary with padding and
unknown tokens, and sampling one token at a time with the state carried.

    vocab = rnnpy.Vocabulary(text)                       # characters as tokens
    text = rnnpy.sample(model, "Anna ", length=200, vocab=vocab, temperature=0.8, seed=0)
    texts = rnnpy.sample(model, ["Anna ", "The "], length=50, vocab=vocab, top_k=5, seed=0)

    sampler = rnnpy.Sampler(model, vocab=vocab, seed=0)   # step by step
    sampler.feed("Anna ")
    for _ in range(20):
        token = sampler.next()                            # one token per prompt, (B,)

The model maps ids (B, T) to logits over the vocabulary at every step, (B, T,
V), and carries a state: ``Sequential(Embedding(V, E), LSTM(E, H), Dense(H,
V))`` as in the char-rnn demo. A model whose first module is not an Embedding
gets one-hot rows of the vocabulary's size instead of ids.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from .._validate import array, seed_value, token_ids
from ..nn.grad_mode import no_grad
from ..nn.module import Module


Prompt = Union[str, Sequence[int], np.ndarray]


def softmax(logits: Any, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits: exp(z / temperature) normalised over ``axis``
    (computed stably, float64 in, float64 out; float32 stays float32).

    logits: (..., C) -> (..., C), each row summing to 1."""
    z = array(logits, "logits")
    if z.dtype.kind not in "fiu":
        raise TypeError(f"logits: expected real numbers, got dtype {z.dtype}")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    z = z.astype(z.dtype if z.dtype.kind == "f" else np.float64) / temperature
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


class Vocabulary:
    """Tokens <-> integer ids, with a padding token (id 0) and an unknown token (id 1).

    corpus: a str (its characters are the tokens), an iterable of tokens, or an
    iterable of token sequences (lists of words). Tokens seen at least
    min_count times are kept, the most frequent first (ties in order of first
    appearance), at most max_size of them besides pad and unk.
    ``encode`` maps a token it does not know to ``unk_id``; ``decode`` drops
    padding. ``sep`` joins decoded tokens ("" for characters, " " otherwise).
    """

    def __init__(self, corpus: Any, pad: str = "<pad>", unk: str = "<unk>", min_count: int = 1,
                 max_size: Optional[int] = None, sep: Optional[str] = None) -> None:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count: expected a positive integer, got {min_count!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < 0):
            raise ValueError(f"max_size: expected a non-negative integer or None, got {max_size!r}")
        if not isinstance(pad, str) or not isinstance(unk, str) or pad == unk:
            raise ValueError(f"pad, unk: expected two different strings, got {pad!r} and {unk!r}")
        tokens = list(self._tokens(corpus))
        counts = Counter(tokens)
        first = {}
        for i, t in enumerate(tokens):
            first.setdefault(t, i)
        kept = [t for t in counts if counts[t] >= min_count and t not in (pad, unk)]
        kept.sort(key=lambda t: (-counts[t], first[t]))
        if max_size is not None:
            kept = kept[:max_size]
        self.pad, self.unk = pad, unk
        if sep is not None and not isinstance(sep, str):
            raise TypeError(f"sep: expected a str or None, got {sep!r:.100} ({type(sep).__name__})")
        self.sep = ("" if isinstance(corpus, str) else " ") if sep is None else sep
        self._set_tokens([pad, unk] + kept)

    @staticmethod
    def _tokens(corpus: Any) -> Iterator[str]:
        if isinstance(corpus, str):
            yield from corpus
            return
        if not hasattr(corpus, "__iter__"):
            raise TypeError(f"corpus: expected a str, tokens or token sequences, got "
                            f"{type(corpus).__name__}")
        for i, item in enumerate(corpus):
            if isinstance(item, str):
                yield item
            elif isinstance(item, (list, tuple)):
                for j, t in enumerate(item):
                    if not isinstance(t, str):
                        raise TypeError(f"corpus[{i}][{j}]: expected a str token, got "
                                        f"{type(t).__name__}")
                    yield t
            else:
                raise TypeError(f"corpus[{i}]: expected a str token or a list of tokens, got "
                                f"{type(item).__name__}")

    def _set_tokens(self, tokens: List[str]) -> None:
        self.tokens: List[str] = list(tokens)
        self.token_to_id: Dict[str, int] = {t: i for i, t in enumerate(self.tokens)}

    pad_id = 0
    unk_id = 1

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        """Number of ids, pad and unk included (the model's vocabulary size)."""
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, pad={self.pad!r}, unk={self.unk!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_config() == other.to_config()

    def __contains__(self, token: object) -> bool:
        return token in self.token_to_id

    def encode(self, tokens: Union[str, Sequence[str]]) -> np.ndarray:
        """A str (characters) or a sequence of tokens, (N,) -> (N,) int64 ids;
        unknown tokens become unk_id."""
        if not isinstance(tokens, (str, list, tuple)):
            raise TypeError(f"tokens: expected a str or a list of str, got {type(tokens).__name__}")
        bad = next((i for i, t in enumerate(tokens) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"tokens[{bad}]: expected a str token, got {tokens[bad]!r:.60} "
                            f"({type(tokens[bad]).__name__})")
        get, unk = self.token_to_id.get, self.unk_id
        return np.array([get(t, unk) for t in tokens], dtype=np.int64)

    def encode_batch(self, texts: Sequence[Union[str, Sequence[str]]]) -> tuple:
        """Several token sequences -> (ids (B, T_max) right-padded with pad_id, lengths (B,))."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
            raise TypeError("texts: expected a non-empty list of str or of token lists")
        rows = [self.encode(t) for t in texts]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        ids = np.full((len(rows), max(1, int(lengths.max()))), self.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        return ids, lengths

    def decode(self, ids: Any, skip_pad: bool = True) -> str:
        """(N,) ids -> the tokens joined by ``sep`` (padding dropped unless skip_pad=False)."""
        arr = token_ids(ids, self.size)
        return self.sep.join(self.tokens[i] for i in arr.tolist() if not (skip_pad and i == self.pad_id))

    def to_config(self) -> Dict[str, Any]:
        """JSON-serialisable; ``Vocabulary.from_config`` rebuilds the same ids."""
        return {"tokens": list(self.tokens), "pad": self.pad, "unk": self.unk, "sep": self.sep}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Vocabulary":
        """Rebuilds a vocabulary from ``to_config()`` output."""
        tokens = config.get("tokens") if isinstance(config, dict) else None
        if (not isinstance(tokens, list) or len(tokens) < 2 or len(set(tokens)) != len(tokens)
                or not all(isinstance(t, str) for t in tokens)):
            raise ValueError("config: expected a dict with 'tokens', a list of unique str "
                             "starting with the pad and unk tokens")
        if tokens[0] != config.get("pad") or tokens[1] != config.get("unk"):
            raise ValueError("config: expected tokens[0] and tokens[1] to be 'pad' and 'unk'")
        vocab = cls.__new__(cls)
        sep = config.get("sep", "")
        if not isinstance(sep, str):
            raise ValueError(f"config: expected 'sep' to be a str, got {sep!r:.100}")
        vocab.pad, vocab.unk, vocab.sep = tokens[0], tokens[1], sep
        vocab._set_tokens(tokens)
        return vocab


def _first_module(model: Module) -> Module:
    while getattr(model, "modules", None):
        model = model.modules[0]
    return model


class Sampler:
    """Draws tokens from a model one step at a time, carrying its state.

    feed(prompts) runs prompts through the model (a str, a list of str, ids
    (P,), or a list or (B, P) array of ids; prompts of different lengths run
    together under ``lengths``); next() draws one token per prompt from
    softmax(logits / temperature), restricted to the top_k most likely when
    given (temperature 0: the most likely), feeds it back and returns it (B,).
    A Vocabulary's pad and unknown tokens are never drawn.
    Generation is reproducible for a given seed.
    """

    def __init__(self, model: Module, vocab: Any = None, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model: expected an rnnpy module, got {type(model).__name__}")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or \
                not (temperature >= 0 and np.isfinite(temperature)):
            raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                                  or top_k < 1):
            raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
        self.model, self.vocab = model, vocab
        self.temperature, self.top_k = float(temperature), top_k
        self.rng = np.random.default_rng(seed_value(seed))
        from ..nn.layers import Embedding

        first = _first_module(model)
        self._one_hot = None if isinstance(first, Embedding) else getattr(first, "input_size", None)
        self.state: Any = None
        self.logits: Optional[np.ndarray] = None   # (B, V) at each prompt's last step

    def _ids(self, prompts: Any, name: str = "prompts") -> tuple:
        """(ids (B, P), lengths (B,) or None, batched); errors name the argument
        ``name`` (sample's and generate's is prime)."""
        if isinstance(prompts, str) or (isinstance(prompts, (list, tuple)) and prompts
                                        and all(isinstance(p, str) for p in prompts)):
            if self.vocab is None:
                raise ValueError("vocab: expected a vocabulary to encode text prompts")
            batched = not isinstance(prompts, str)
            texts = list(prompts) if batched else [prompts]
            rows = [np.asarray(self.vocab.encode(t), dtype=np.int64) for t in texts]
        else:
            arr = array(prompts, name) if not isinstance(prompts, (list, tuple)) or not prompts or \
                not isinstance(prompts[0], (list, tuple, np.ndarray)) else None
            if arr is not None and arr.ndim in (1, 2) and arr.dtype.kind in "iu":
                batched = arr.ndim == 2
                rows = list(arr) if batched else [arr]
            elif arr is None:
                batched = True
                rows = [array(p, f"{name}[{i}]") for i, p in enumerate(prompts)]
                if not all(r.ndim == 1 and (r.dtype.kind in "iu" or r.size == 0) for r in rows):
                    raise TypeError(f"{name}: expected lists of integer ids")
            else:
                raise TypeError(f"{name}: expected a str, a list of str, or integer ids (P,) or "
                                f"(B, P), got {type(prompts).__name__}"
                                + (f" of dtype {arr.dtype} and shape {arr.shape}" if arr is not None else ""))
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        if (lengths == 0).any():
            k = int(np.flatnonzero(lengths == 0)[0])
            raise ValueError(f"{name}: expected at least one token in each prompt, prompt {k} is empty")
        ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        return ids, (None if (lengths == lengths[0]).all() else lengths), batched

    def _run(self, ids: np.ndarray, lengths: Optional[np.ndarray]) -> None:
        x: Any = ids
        if self._one_hot is not None:
            from ..data.arrays import one_hot

            x = one_hot(ids, self._one_hot, dtype=self.model.dtype)
        if not self.model.is_recurrent:
            raise TypeError(f"model: expected a recurrent model (forward returns (out, state)), "
                            f"got {type(self.model).__name__}")
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with no_grad():  # nothing is kept for a backward that never comes
                out, self.state = self.model.forward(x, self.state, lengths)
        finally:
            if was_training:
                self.model.train(True)
        if out.ndim != 3:
            raise ValueError(f"model: expected logits at every step (B, T, V), got shape {out.shape}")
        last = (np.full(len(ids), ids.shape[1] - 1) if lengths is None else lengths - 1)
        self.logits = out[np.arange(len(ids)), last].astype(np.float64)

    def feed(self, prompts: Any) -> "Sampler":
        """Runs prompts through the model from the current state (None at
        first: zeros). Returns self."""
        return self._feed(prompts, "prompts")

    def _feed(self, prompts: Any, name: str) -> "Sampler":
        ids, lengths, self._batched = self._ids(prompts, name)
        if self.logits is not None and len(ids) != len(self.logits):
            raise ValueError(f"{name}: expected {len(self.logits)} prompts like the ones fed "
                             f"before, got {len(ids)} (call reset() to start over)")
        self._run(ids, lengths)
        return self

    def reset(self) -> None:
        """Forgets the state and the prompts."""
        self.state, self.logits = None, None

    def next(self) -> np.ndarray:
        """Draws one token per prompt, feeds it back; returns the ids (B,)."""
        if self.logits is None:
            raise RuntimeError("feed: expected a prompt before next()")
        z = self.logits.copy()
        for special in ("pad_id", "unk_id"):   # a vocabulary's padding and unknown are never drawn
            k = getattr(self.vocab, special, None)
            if isinstance(k, int) and 0 <= k < z.shape[1] and z.shape[1] > 2:
                z[:, k] = -np.inf
        if self.top_k is not None and self.top_k < z.shape[1]:
            kth = np.partition(z, -self.top_k, axis=1)[:, -self.top_k][:, None]
            z[z < kth] = -np.inf
        if self.temperature == 0:
            tok = np.argmax(z, axis=1)
        else:
            p = softmax(z, axis=1, temperature=self.temperature)
            u = self.rng.random(len(p))[:, None]
            tok = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)
        tok = tok.astype(np.int64)
        self._run(tok[:, None], None)
        return tok


def generate(model: Module, prime: Any, length: int, *, vocab: Any = None, temperature: float = 1.0,
             top_k: Optional[int] = None, seed: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yields ``length`` tokens one at a time, each (B,) ids (B = 1 for one
    prompt), with the state carried; stop early by leaving the loop."""
    length = _length(length)
    sampler = Sampler(model, vocab, temperature, top_k, seed)._feed(prime, "prime")
    for _ in range(length):
        yield sampler.next()


def _length(length: Any) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length: expected a non-negative integer, got {length!r}")
    return int(length)


def sample(model: Module, prime: Any, length: int = 100, *, vocab: Any = None,
           temperature: float = 1.0, top_k: Optional[int] = None,
           seed: Optional[int] = None) -> Union[str, List[str], np.ndarray]:
    """prime followed by ``length`` sampled tokens.

    prime: a str (with vocab; returns a str), a list of str (returns a list of
    str, one per prompt, run as one batch), ids (P,) (returns ids (P + length,)),
    or ids (B, P) or a list of id lists (returns a list of arrays).
    temperature: > 0 divides the logits (lower is more conservative); 0 takes
    the most likely token. top_k: draw among the k most likely only. seed:
    the same seed gives the same text.
    """
    length = _length(length)
    sampler = Sampler(model, vocab, temperature, top_k, seed)
    ids, lengths, batched = sampler._ids(prime, "prime")
    sampler._run(ids, lengths)
    drawn = np.stack([sampler.next() for _ in range(length)], axis=1) if length else \
        np.zeros((len(ids), 0), dtype=np.int64)
    lens = np.full(len(ids), ids.shape[1]) if lengths is None else lengths
    rows = [np.concatenate([ids[i, :lens[i]], drawn[i]]) for i in range(len(ids))]
    if isinstance(prime, str) or (batched and isinstance(prime, (list, tuple)) and prime
                                  and all(isinstance(p, str) for p in prime)):
        prompts = list(prime) if batched else [prime]
        texts = [p + vocab.decode(drawn[i]) for i, p in enumerate(prompts)]
        return texts if batched else texts[0]
    return rows if batched else rows[0]
