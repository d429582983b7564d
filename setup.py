"""Builds rnnpy._core, the C kernels, against NumPy's C API.

One portable build: the GEMM picks its AVX-512, AVX2 or plain-C micro-kernel
at run time, so no -march flag is needed. Threads come from the core's own
pool (csrc/pool.c) over POSIX threads; where there are none, the kernels run
on one thread, with the same results. RNNPY_WERROR=1 turns warnings into
errors (CI sets it); RNNPY_SANITIZE=1 builds with AddressSanitizer and UBSan.
The flags above are GCC/Clang's; with MSVC, BuildExt swaps in MSVC's own.
"""
import glob
import os

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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



def _msvc_args(args: list) -> list:
    """MSVC's equivalents of the GCC/Clang flags in args (the rest have none)."""
    table = {"-O3": "/O2", "-std=c11": "/std:c11", "-Wall": "/W3", "-Werror": "/WX",
             "-fopenmp": "/openmp", "-g": "/Zi"}
    return [table[a] for a in args if a in table]


class BuildExt(build_ext):
    """Chooses the compile flags by compiler type: the flags above are
    GCC/Clang's; MSVC gets its own and has no separate libm."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = _msvc_args(ext.extra_compile_args)
                ext.extra_link_args = []
                ext.libraries = [lib for lib in ext.libraries if lib != "m"]
        super().build_extensions()


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "rnnpy._core",
            sources=sources,
            include_dirs=["csrc", numpy.get_include()],
            depends=sorted(glob.glob("csrc/*.h")),
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            libraries=["m"],
        )
    ],
)
