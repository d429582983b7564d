"""Builds rnnpy._core, the C kernels, against NumPy's C API.

One portable build: the GEMM picks its AVX-512, AVX2 or plain-C micro-kernel
at run time, so no -march flag is needed. Threads come from the core's own
pool (csrc/pool.c) over POSIX threads; where there are none, the kernels run
on one thread, with the same results. RNNPY_WERROR=1 turns warnings into
errors (CI sets it); RNNPY_SANITIZE=1 builds with AddressSanitizer and UBSan.
"""
import glob
import os

import numpy
from setuptools import Extension, setup

sources = sorted(glob.glob("csrc/*.c"))
compile_args = ["-std=c11", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden"]
link_args = []
if os.name == "posix":
    compile_args.append("-pthread")
    link_args.append("-pthread")
if os.environ.get("RNNPY_WERROR") == "1":
    compile_args.append("-Werror")
if os.environ.get("RNNPY_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1", "-g"] + san
    link_args += san

setup(
    ext_modules=[
        Extension(
            "rnnpy._core",
            sources=sources,
            include_dirs=["csrc", numpy.get_include()],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            libraries=["m"],
        )
    ],
)
