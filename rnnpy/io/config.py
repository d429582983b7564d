"""A model's structure as JSON: module_config of a module tree, and the module
tree (with fresh parameters) a saved configuration describes, after checking
its sizes against the arrays the file declares.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..cells import family
from ..nn.layers import Dense, Dropout, Embedding, LastStep
from ..nn.module import Module
from ..nn.recurrent import GRU, LSTM, RNN
from ..nn.sequential import Sequential
from .errors import ModelFileError


MODULES = {cls.__name__: cls for cls in (RNN, LSTM, GRU, Dense, Embedding, LastStep, Dropout, Sequential)}


MAX_DEPTH = 64                  # nesting of extra data and of Sequential configs


MAX_MODULES = 4096              # modules in one saved model


# -- module trees <-> JSON ---------------------------------------------------------
def module_config(module: Module) -> Dict[str, Any]:
    """{"class": name, "config": constructor arguments} for a module tree."""
    name = type(module).__name__
    if name not in MODULES:
        raise TypeError(f"model: cannot save a {name}; savable modules are {sorted(MODULES)}")
    return {"class": name, "config": module.get_config()}


def _checked_spec(spec: Any, where: str) -> Tuple[type, Dict[str, Any]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
            or not isinstance(spec.get("config"), dict):
        raise ModelFileError(f"{where}: expected {{'class': str, 'config': dict}}, got {spec!r:.200}")
    cls = MODULES.get(spec["class"])
    if cls is None:
        raise ModelFileError(f"{where}: unknown module class {spec['class']!r:.100}")
    return cls, spec["config"]


def _size(config: Dict[str, Any], key: str, default: Any, where: str, cls: str,
          lo: int = 1) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ModelFileError(f"{where}: cannot build {cls}: {key}: expected an integer >= {lo}, "
                             f"got {value!r:.100}")
    return value


def planned_params(spec: Any, where: str = "model", depth: int = 0,
                   count: Optional[List[int]] = None) -> int:
    """Number of parameters of the module a module_config() describes, computed
    from the configuration alone (nothing is allocated), so that a file's
    declared sizes can be checked before its model is built. ModelFileError
    for unknown classes, bad sizes, nesting deeper than MAX_DEPTH or more than
    MAX_MODULES modules."""
    if count is None:
        count = [0]
    count[0] += 1
    if count[0] > MAX_MODULES:
        raise ModelFileError(f"{where.split('.')[0]}: more than {MAX_MODULES} modules in one model")
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where.split('.')[0]}: modules nested deeper than {MAX_DEPTH} levels")
    cls, config = _checked_spec(spec, where)
    name = cls.__name__
    if cls is Sequential:
        children = config.get("modules")
        if not isinstance(children, list) or not children:
            raise ModelFileError(f"{where}: a Sequential needs a non-empty list of modules")
        return sum(planned_params(c, f"{where}.modules[{i}]", depth + 1, count)
                   for i, c in enumerate(children))
    if cls is Dense:
        i, o = (_size(config, k, None, where, name) for k in ("in_features", "out_features"))
        return o * i + (o if config.get("bias", True) else 0)
    if cls is Embedding:
        return _size(config, "num_embeddings", None, where, name) * \
            _size(config, "embedding_dim", None, where, name)
    if cls in (LastStep, Dropout):
        return 0
    # recurrent layers, PyTorch's layout per layer and direction: w_ih, w_hh,
    # b_ih, b_hh, then peepholes (3, H), projection (P, H), layer-norm gains
    fam = family(cls)
    gates = fam.gates
    I = _size(config, "input_size", None, where, name)
    H = _size(config, "hidden_size", None, where, name)
    L = _size(config, "num_layers", 1, where, name)
    D = 2 if config.get("bidirectional", False) is True else 1
    P = _size(config, "proj_size", 0, where, name, lo=0) if "proj_size" in fam.options else 0
    Hs = P or H
    ln = config.get("layer_norm", False) is True
    G = gates * H
    total = 0
    for layer in range(min(L, 2)):   # layers above the first are all alike
        n_in = I if layer == 0 else D * Hs
        cell = G * n_in + G * Hs + 2 * G + P * H
        if "peephole" in fam.options:
            cell += 3 * H if config.get("peephole", False) is True else 0
        if fam.has_cell_state:   # the cell state's layer norm: gain and bias (H,) each
            cell += 2 * H if ln else 0
        cell += 2 * G if ln else 0
        total += D * cell * (1 if layer == 0 else L - 1)
    return total


def build_module(spec: Any, where: str = "config", depth: int = 0) -> Module:
    """The module a module_config() describes (with fresh parameters)."""
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where.split('.')[0]}: modules nested deeper than {MAX_DEPTH} levels")
    cls, config = _checked_spec(spec, where)
    config = dict(config)
    try:
        if cls is Sequential:
            children = config.get("modules")
            if not isinstance(children, list):
                raise ModelFileError(f"{where}: a Sequential needs a list of modules")
            return Sequential(*[build_module(c, f"{where}.modules[{i}]", depth + 1)
                                for i, c in enumerate(children)])
        return cls(**config)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{where}: cannot build {spec['class']}: {exc}") from exc
