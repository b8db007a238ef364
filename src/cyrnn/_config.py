"""cyrnn.show_config(): what runs on this machine, as numpy.show_config()
says for numpy: the kernels' instruction set and why, the BLAS scipy loaded,
the OpenMP runtime and the thread count."""
import os
import re

import scipy
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that cyrnn calls)

from cyrnn import _cpu, _threads

LEVEL_ENV = "CYRNN_CPU_LEVEL"
OPENMP_LIBRARY = re.compile(r"^lib(g|i)?omp\b")


def _kernel_reason(level, best):
    if not _cpu.has_dispatch():
        return "this build has no run-time dispatch (not x86-64 with GCC or clang)"
    if level < best:
        return (f"capped by {LEVEL_ENV}={os.environ.get(LEVEL_ENV)!s}; this CPU runs "
                f"{_cpu.level_name(best)}")
    cap = os.environ.get(LEVEL_ENV)
    ignored = f" ({LEVEL_ENV}={cap} ignored: only a lower level is taken)" if cap else ""
    return f"the best this CPU runs{ignored}"


def _products():
    """Where the products of both passes run (see _plan.pxd)."""
    requested = _cpu.requested_products()
    where = ("BLAS (scipy's), the cells in the kernels" if _cpu.blas_runs_products()
             else "the kernels")
    if requested is not None:
        reason = f"{_cpu.PRODUCTS_ENV}={requested}"
    elif _cpu.blas_outpaces_kernels():
        reason = "level 0's vectors are narrower than this CPU's AVX, which BLAS uses"
    elif _cpu.kernel_level() == 0 and _cpu.blas_core_without_avx():
        reason = "OPENBLAS_CORETYPE holds BLAS to a core without AVX"
    else:
        reason = "the kernels' vectors are as wide as the CPU's"
    exceptions = " (not for streams)" if _cpu.blas_runs_products() else ""
    return f"{where}: {reason}{exceptions}{_chunk_products()}"


def _chunk_products():
    """Where BLAS runs BPTT's chunk products though the kernels run the
    rest (_cpu.blas_runs_gradients)."""
    if _cpu.blas_runs_products() or not _cpu.blas_runs_gradients(_cpu.BLAS_GRADIENT_WEIGHTS):
        return ""
    return (f"; BPTT's dx and weight gradients in BLAS for a layer of "
            f"{_cpu.BLAS_GRADIENT_WEIGHTS:,} weights or more (G*H*(in + out)), "
            f"whose GEMMs its AVX2 kernel runs faster")


def _kernels():
    level, best = _cpu.kernel_level(), _cpu.cpu_best_level()
    return {"level": level, "name": _cpu.level_name(level),
            "vector_bytes": _cpu.vector_bytes(level), "reason": _kernel_reason(level, best),
            "products": _products()}


def _blas():
    """scipy's BLAS as scipy was built, and as loaded when threadpoolctl is
    there to ask."""
    built = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info = {"name": built.get("name"), "version": built.get("version")}
    try:
        import threadpoolctl
    except ImportError:
        return info
    for pool in threadpoolctl.threadpool_info():
        if pool["user_api"] == "blas" and "scipy" in os.path.dirname(pool["filepath"]):
            info.update(architecture=pool.get("architecture"), threads=pool["num_threads"],
                        filepath=pool["filepath"])
            break
    return info


def _openmp_runtime():
    """The OpenMP library in this process, from its memory map (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            names = {os.path.basename(line.split()[-1]) for line in maps}
    except OSError:
        return None
    return ", ".join(sorted(n for n in names if OPENMP_LIBRARY.match(n))) or None


def _openmp():
    version = _threads.OPENMP_VERSION
    if not version:
        return {"enabled": False, "runtime": None}
    return {"enabled": True, "version": version, "runtime": _openmp_runtime()}


def show_config(mode="stdout"):
    """Prints (mode="stdout") or returns (mode="dicts") the kernels'
    instruction set and why it was chosen, scipy's BLAS, the OpenMP runtime
    and cyrnn's thread count."""
    if mode not in ("stdout", "dicts"):
        raise ValueError(f'mode must be "stdout" or "dicts", got {mode!r}')
    config = {"kernels": _kernels(), "blas": _blas(), "openmp": _openmp(),
              "threads": _threads.get_num_threads()}
    if mode == "dicts":
        return config
    for section, value in config.items():
        if isinstance(value, dict):
            print(f"{section}:")
            for key, item in value.items():
                print(f"  {key}: {item}")
        else:
            print(f"{section}: {value}")
    return None
