"""The training loop's progress display: a tqdm bar (the notebook widget in
Jupyter), the verbosity levels of fit/evaluate/predict, the per-epoch line.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional


class _NoBar:
    """Stands in for a progress bar that is off (tqdm is not even imported)."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (where stderr is no terminal
    but a bar still shows)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None   # type: ignore[attr-defined]
    except Exception:   # pragma: no cover - an IPython without a shell
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _verbosity(verbose: Any, progress: Optional[bool]) -> int:
    """Keras's verbose: 0 silent, 1 a progress bar per epoch and a line at its
    end, 2 one line per epoch. "auto"/None: 1 on a terminal or in a notebook,
    else 2 (logs and files get a line per epoch). progress=True/False is 1/0."""
    if verbose is None or verbose == "auto":
        if progress is not None:
            return 1 if progress else 0
        return 1 if (_in_notebook() or sys.stderr.isatty()) else 2
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _progress(total: Optional[int], desc: str, verbosity: int) -> Any:
    if verbosity != 1:
        return _NoBar()
    try:
        if _in_notebook():
            try:   # the widget bar needs ipywidgets; without it tqdm.auto warns, so use text
                import ipywidgets  # noqa: F401

                from tqdm.auto import tqdm
            except ImportError:
                from tqdm.std import tqdm
        else:
            from tqdm.std import tqdm
    except ImportError:   # tqdm is a dependency; a broken install still gets the epoch lines
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def _epoch_line(epoch: int, last: int, seconds: float, logs: Dict[str, float]) -> str:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
    return f"epoch {epoch}/{last}  {seconds:.2f}s  {shown}"
