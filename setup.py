"""Builds cyrnn's extension modules: every src/cyrnn/*.pyx, each linked with
the C of csrc/ that it calls (from one static library of it).

The build is portable by default: the kernels are compiled once per
instruction-set level (AVX-512, AVX2 + FMA, baseline) and the level is
chosen at run time (csrc/cpu_level.h). CYRNN_NATIVE=1 compiles everything
for this CPU. Where the compiler has no OpenMP (Apple's clang), or with
CYRNN_OPENMP=0, cyrnn is built to run on one thread, and says so here.
"""
import glob
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools._distutils.ccompiler import new_compiler
from setuptools._distutils.sysconfig import customize_compiler

# The kernels live in headers included by the .c files: a change to one must
# rebuild the extensions, which setuptools only knows if it is told.
C_HEADERS = sorted(glob.glob("csrc/*.h"))
KERNELS = sorted(glob.glob("csrc/*.c"))
# Compiled once into a static library: each extension that links it takes
# only the objects whose functions it calls.
KERNEL_LIBRARY = "cyrnn_kernels"
COMPILE_ARGS = ["-O3", "-std=gnu99", "-fno-math-errno", "-Wno-unused-function"]
LINK_ARGS = []


def compiler_accepts(flags):
    """Whether the build's C compiler compiles and links an OpenMP program
    with these flags."""
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=flags)
        except Exception:  # CompileError or LinkError, from whichever distutils is in use
            return False
    return True


if os.environ.get("CYRNN_OPENMP") == "0":
    print("cyrnn: CYRNN_OPENMP=0: building for one thread", file=sys.stderr)
elif compiler_accepts(["-fopenmp"]):
    COMPILE_ARGS.append("-fopenmp")
    LINK_ARGS.append("-fopenmp")
else:
    print("cyrnn: the C compiler has no OpenMP (-fopenmp): building for one thread",
          file=sys.stderr)
if os.environ.get("CYRNN_NATIVE") == "1":
    COMPILE_ARGS.append("-march=native")
if os.environ.get("CYRNN_SANITIZE") == "1":
    COMPILE_ARGS += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    LINK_ARGS.append("-fsanitize=address,undefined")


def extension(pyx):
    name = os.path.splitext(os.path.basename(pyx))[0]
    return Extension(
        "cyrnn." + name,
        sources=[pyx],  # build_ext links every extension with KERNEL_LIBRARY
        depends=C_HEADERS + KERNELS + glob.glob("src/cyrnn/*.pxd"),
        include_dirs=["csrc", numpy.get_include()],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    )


class BuildExtAfterKernels(build_ext):
    """build_ext that makes the kernels' library first: `setup.py build`
    does, but `setup.py build_ext` alone would not."""

    def run(self):
        self.run_command("build_clib")
        super().run()


setup(
    cmdclass={"build_ext": BuildExtAfterKernels},
    libraries=[(KERNEL_LIBRARY, {"sources": KERNELS, "include_dirs": ["csrc"],
                                 "cflags": COMPILE_ARGS, "obj_deps": {"": C_HEADERS}})],
    ext_modules=cythonize(
        [extension(pyx) for pyx in sorted(glob.glob("src/cyrnn/*.pyx"))],
        compiler_directives={"language_level": "3"},
    ),
)
