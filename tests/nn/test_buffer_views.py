"""flat_params and flat_grads (a layer's, a Sequential's, a bound child's) are
views that do not own their memory: resize(), even with refcheck=False, is
refused instead of moving the vector and leaving every parameter view (and the
C cells' pointers) on freed memory."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"
MODELS = {
    "dense": lambda: rnnpy.Dense(2, 2, dtype=F64),
    "lstm": lambda: rnnpy.LSTM(2, 3, dtype=F64),
    "last_step": lambda: rnnpy.LastStep(dtype=F64),
    "sequential": lambda: rnnpy.Sequential(rnnpy.Dense(2, 2, dtype=F64)),
    "nested": lambda: rnnpy.Sequential(rnnpy.Sequential(rnnpy.GRU(2, 3, dtype=F64)),
                                       rnnpy.LastStep(dtype=F64)),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_flat_vectors_cannot_be_resized(kind):
    m = MODELS[kind]()
    modules = [m] + list(getattr(m, "modules", ()))
    for mod in modules:
        for name in ("flat_params", "flat_grads"):
            vec = getattr(mod, name)
            before = vec.copy()
            with pytest.raises(ValueError, match="does not own its data"):
                vec.resize(vec.size + 1, refcheck=False)
            assert getattr(mod, name).shape == before.shape
    # the views still are the buffer
    m.flat_params[...] = 5.0
    for v in m.params.values():
        np.testing.assert_array_equal(v, 5.0)


def test_bind_to_owning_vectors_gives_views_of_them():
    d = rnnpy.Dense(2, 2, dtype=F64)
    p, g = np.arange(6, dtype=np.float64), np.zeros(6)
    d.bind(p, g, copy=False)
    with pytest.raises(ValueError, match="does not own its data"):
        d.flat_params.resize(7, refcheck=False)
    d.params["bias"] = [9.0, 9.0]
    np.testing.assert_array_equal(p[-2:], [9.0, 9.0])   # the caller's vector is the buffer
