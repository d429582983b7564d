"""Compute precision of the recurrent layers (``compute_dtype``): which
bfloat16 micro-kernels this CPU has, and the value a layer's request resolves to.

Parameters, gradients, states and every elementwise operation stay in the
layer's dtype; with "bfloat16" only the operands of the matrix products are
rounded to bfloat16 (nearest even) and accumulated in float32, on AMX tiles or
AVX512-BF16 (see csrc/gemm_bf16.c). The C core also has a portable bfloat16
kernel ('generic'), but it is slower than float32, so a layer asks for the
hardware and refuses without it.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._validate import compute_dtype_name

# the bfloat16 micro-kernels that make compute_dtype="bfloat16" worth asking for
HARDWARE_ISAS = ("amx", "avx512_bf16")

NO_BF16_HARDWARE = 'compute_dtype="bfloat16" needs AMX-BF16 or AVX512-BF16; this CPU has neither'


def bf16_isas() -> Tuple[str, ...]:
    """The bfloat16 micro-kernels this CPU and OS support, best first (the C
    core's list: 'amx', 'avx512_bf16', 'generic')."""
    return tuple(_core.bf16_isas())


def bf16_hardware() -> Optional[str]:
    """The best bfloat16 hardware kernel here ('amx' or 'avx512_bf16'), or None."""
    return next((isa for isa in bf16_isas() if isa in HARDWARE_ISAS), None)


def resolve_compute_dtype(value: Any, dtype: np.dtype, name: str = "compute_dtype") -> str:
    """The compute precision a layer of ``dtype`` runs for the request ``value``:
    None or the dtype's name -> the dtype's name; "bfloat16" -> "bfloat16"
    (float32 layers only, ValueError for float64; ValueError NO_BF16_HARDWARE on
    a CPU without AMX-BF16 or AVX512-BF16); "auto" -> "bfloat16" where that
    works (a float32 layer on such a CPU), else the dtype's name."""
    want = compute_dtype_name(value, dtype, name)
    if want == "auto":
        return "bfloat16" if dtype == np.float32 and bf16_hardware() is not None else dtype.name
    if want == "bfloat16" and bf16_hardware() is None:
        raise ValueError(NO_BF16_HARDWARE)
    return want
