"""The environment that caps cyrnn and its peers at one instruction-set
level: the variables each library reads when it loads (compare.py's
--cpu-level, tools/ab_builds.py's --level)."""
import os

from machine import cpuinfo_field  # beside this file

CPU_LEVELS = (0, 1, 2)
LEVEL_NAMES = {2: "AVX-512", 1: "AVX2+FMA", 0: "baseline x86-64"}
# numpy's dispatch targets above each level, under both numpy 1.x and 2.x
# names (a name this numpy does not dispatch is ignored with an ImportWarning)
_NUMPY_ABOVE_AVX2 = ("X86_V4 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX "
                     "AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR")
LEVEL_CAPS = {
    2: {},
    1: dict(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
            MKL_ENABLE_INSTRUCTIONS="AVX2", OPENBLAS_CORETYPE="Haswell",
            NPY_DISABLE_CPU_FEATURES=_NUMPY_ABOVE_AVX2),
    # OpenBLAS's "Nehalem" (SSE4.2) is named back by threadpoolctl; its
    # "Prescott"/"Core2" show as "Katmai". MKL's lowest is SSE4_2.
    0: dict(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41",
            MKL_ENABLE_INSTRUCTIONS="SSE4_2", OPENBLAS_CORETYPE="Nehalem",
            NPY_DISABLE_CPU_FEATURES="X86_V3 AVX F16C FMA3 AVX2 " + _NUMPY_ABOVE_AVX2),
}
# MKL honours MKL_ENABLE_INSTRUCTIONS on Intel's CPUs only; elsewhere it runs
# its AVX2 GEMMs whatever that says (an AMD EPYC, Zen 5: SGEMM 2048^3 at 104
# GFLOP/s under SSE4_2, above what SSE can do). Its reproducibility mode
# COMPATIBLE holds it to SSE2 on any CPU (47 GFLOP/s there): level 0's cap
# where the CPU is not Intel's.
NON_INTEL_CAPS = {0: dict(MKL_CBWR="COMPATIBLE")}
CAP_VARIABLES = ("CYRNN_CPU_LEVEL", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                 "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE",
                 "OPENBLAS_L2_SIZE", "NPY_DISABLE_CPU_FEATURES")


def cpu_vendor():
    """/proc/cpuinfo's vendor_id ("GenuineIntel", "AuthenticAMD"), or "" where
    there is none (not Linux, not x86)."""
    return cpuinfo_field("vendor_id") or ""


def cpu_level_env(level):
    """The variables --cpu-level `level` sets: name -> value, None to unset."""
    env = dict.fromkeys(CAP_VARIABLES)
    env.update(LEVEL_CAPS[level], CYRNN_CPU_LEVEL=str(level))
    if cpu_vendor() not in ("GenuineIntel", ""):
        env.update(NON_INTEL_CAPS.get(level, {}))
    return env


def cpu_level_env_matches(level, environ=os.environ):
    return all(environ.get(k) == v for k, v in cpu_level_env(level).items())


def capped_environ(level, environ=os.environ):
    """environ with every cap variable as --cpu-level `level` sets it."""
    env = {k: v for k, v in environ.items() if k not in CAP_VARIABLES}
    env.update({k: v for k, v in cpu_level_env(level).items() if v is not None})
    return env
