"""Other builds of the same source give the same results: one compiled with
clang (macOS's compiler; its run-time dispatch must pick the same kernels as
GCC's) and one without OpenMP (as Apple's clang builds it), which must run on
one thread whatever it is asked.

Each build is made from this checkout's sources (as a fresh clone has them:
without the files that the build generates) into a temporary folder and run
in a subprocess against the cases of test_instruction_sets."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cyrnn

from test_instruction_sets import CASES, run_case
from helpers import tolerances

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_CASES = [case for case in CASES if case[2]["T"] * case[2]["B"] < 1000]


def build(tmp_path, **environment):
    """Builds the extensions from this checkout with `environment` added;
    returns the folder to put on PYTHONPATH."""
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("the tests run outside a source checkout: nothing to build")
    source = tmp_path / "source"
    # Without what the build generates (the .c of the .pyx, _kernels.pxd from
    # its template, csrc/generated/), as a fresh clone is: the build writes them.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.so", "_*.c", "_kernels.pxd", "generated", ".venv", "venv", ".asv",
        "tests", "benchmarks"))
    lib = tmp_path / "lib"
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(lib),
         "--build-temp", str(tmp_path / "objects")],
        cwd=source, env=dict(os.environ, **environment), capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for module in (source / "src" / "cyrnn").glob("*.py"):
        shutil.copy(module, lib / "cyrnn")
    return lib, done.stderr


def run_in(lib, script, **variables):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(lib), os.path.dirname(__file__)]),
                       **variables)
    done = subprocess.run([sys.executable, "-c", script], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def results_of(lib, tmp_path, **variables):
    out = tmp_path / "results.npz"
    run_in(lib, "import numpy as np, cyrnn\n"
                f"assert cyrnn.__file__.startswith({str(lib)!r}), cyrnn.__file__\n"
                "from test_instruction_sets import run_case\n"
                "from test_builds import SMALL_CASES\n"
                "np.savez({!r}, **{{f'{{k}}/{{n}}': a for k, case in enumerate(SMALL_CASES)\n"
                "                   for n, a in run_case(*case).items()}})\n".format(str(out)),
           **variables)
    with np.load(out) as arrays:
        return dict(arrays)


def assert_same_results(results):
    for k, case in enumerate(SMALL_CASES):
        for name, want in run_case(*case).items():
            rtol = tolerances(case[1])["rtol"]
            np.testing.assert_allclose(results[f"{k}/{name}"], want, rtol=rtol,
                                       atol=rtol * np.abs(want).max(), err_msg=f"{case} {name}")


def kernels_of(lib):
    return run_in(lib, "import cyrnn; k = cyrnn.show_config(mode='dicts')['kernels']\n"
                       "print(k['level'], k['vector_bytes'])").split()


@pytest.mark.skipif(shutil.which("clang") is None,
                    reason="clang is not installed (apt-get install clang)")
def test_a_clang_build_picks_the_same_kernels_and_agrees(tmp_path):
    lib, _ = build(tmp_path, CC="clang")
    config = cyrnn.show_config(mode="dicts")["kernels"]
    assert kernels_of(lib) == [str(config["level"]), str(config["vector_bytes"])]
    assert_same_results(results_of(lib, tmp_path))
    # level 0: its kernels' products, and BLAS's (the step kernel then takes
    # them done), in clang's build too
    for products in ("kernels", "blas"):
        assert_same_results(results_of(lib, tmp_path, CYRNN_CPU_LEVEL="0",
                                       CYRNN_PRODUCTS=products))


def test_a_build_without_openmp_runs_one_thread_and_agrees(tmp_path):
    lib, log = build(tmp_path, CYRNN_OPENMP="0")
    assert "building for one thread" in log
    report = run_in(lib, "import warnings, cyrnn\n"
                         "with warnings.catch_warnings(record=True) as caught:\n"
                         "    warnings.simplefilter('always')\n"
                         "    cyrnn.set_num_threads(2)\n"
                         "print(cyrnn.get_num_threads(), cyrnn.show_config(mode='dicts')['openmp']['enabled'],\n"
                         "      [str(w.message) for w in caught])\n")
    assert report.startswith("1 False ['cyrnn was built without OpenMP"), report
    assert_same_results(results_of(lib, tmp_path))
