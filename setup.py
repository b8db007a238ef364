"""Builds cyrnn's extension modules: every src/cyrnn/*.pyx, linked with the C
kernels of csrc/.

The build is portable by default (the kernels carry AVX2 and AVX-512 clones
chosen at run time). Set CYRNN_NATIVE=1 to compile everything for this CPU.
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

C_SOURCES = sorted(glob.glob("csrc/*.c"))
# The kernels live in headers included by the .c files: a change to one must
# rebuild the extensions, which setuptools only knows if it is told.
C_HEADERS = sorted(glob.glob("csrc/*.h"))
COMPILE_ARGS = ["-O3", "-std=gnu99", "-fno-math-errno", "-Wno-unused-function", "-Wno-psabi", "-fopenmp"]
LINK_ARGS = ["-fopenmp"]
if os.environ.get("CYRNN_NATIVE") == "1":
    # CYRNN_NATIVE tells the kernels' variants not to narrow their targets
    COMPILE_ARGS += ["-march=native", "-DCYRNN_NATIVE"]
if os.environ.get("CYRNN_SANITIZE") == "1":
    COMPILE_ARGS += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]

extensions = [
    Extension(
        "cyrnn." + os.path.splitext(os.path.basename(pyx))[0],
        sources=[pyx] + C_SOURCES,
        depends=C_HEADERS + glob.glob("src/cyrnn/*.pxd"),
        include_dirs=["csrc", numpy.get_include()],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS + (["-fsanitize=address,undefined"]
                                     if os.environ.get("CYRNN_SANITIZE") == "1" else []),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    )
    for pyx in sorted(glob.glob("src/cyrnn/*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3"},
    ),
)
