"""cyrnn.show_config() says which kernels run and why."""
import os
import subprocess
import sys

import pytest

import cyrnn


def config_in_subprocess(cap):
    environment = {k: v for k, v in os.environ.items() if k != "CYRNN_CPU_LEVEL"}
    if cap is not None:
        environment["CYRNN_CPU_LEVEL"] = cap
    package_parent = os.path.dirname(os.path.dirname(cyrnn.__file__))
    environment["PYTHONPATH"] = package_parent
    done = subprocess.run([sys.executable, "-c", "import cyrnn; k = cyrnn.show_config("
                           "mode='dicts')['kernels']; print(k['level'], k['vector_bytes'], "
                           "k['reason'])"], env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    level, width, reason = done.stdout.split(maxsplit=2)
    return int(level), int(width), reason


def test_the_default_is_the_best_level_of_this_cpu():
    level, width, reason = config_in_subprocess(None)
    assert width == {2: 64, 1: 32, 0: 16}[level]
    assert "best this CPU runs" in reason or "no run-time dispatch" in reason


@pytest.mark.parametrize("cap", ["0", "1"])
def test_a_cap_names_the_level_and_its_vector_width(cap):
    best, _, _ = config_in_subprocess(None)
    level, width, reason = config_in_subprocess(cap)
    assert level == min(int(cap), best)
    assert width == {2: 64, 1: 32, 0: 16}[level]
    if level < best:
        assert f"CYRNN_CPU_LEVEL={cap}" in reason


def products_in_subprocess(cap, coretype=None, products=None):
    """(BLAS runs the products, show_config's sentence) in a fresh process."""
    names = ("CYRNN_CPU_LEVEL", "OPENBLAS_CORETYPE", "CYRNN_PRODUCTS")
    environment = {k: v for k, v in os.environ.items() if k not in names}
    environment.update({k: v for k, v in zip(names, (cap, coretype, products)) if v})
    environment["PYTHONPATH"] = os.path.dirname(os.path.dirname(cyrnn.__file__))
    done = subprocess.run([sys.executable, "-c", "import cyrnn; from cyrnn import _cpu; print("
                           "_cpu.blas_runs_products(), cyrnn.show_config(mode='dicts')"
                           "['kernels']['products'])"], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runs, products = done.stdout.split(maxsplit=1)
    return runs == "True", products


def test_blas_runs_the_products_only_where_its_vectors_are_wider_than_the_kernels():
    best, _, _ = config_in_subprocess(None)
    runs, products = products_in_subprocess(None)
    assert not runs and products.startswith("the kernels")
    runs, products = products_in_subprocess("0")
    # every CPU with AVX2 has AVX: capped at 0, it runs BLAS's products
    assert runs == (best > 0) and products.startswith("BLAS") == runs
    runs, products = products_in_subprocess("0", coretype="Nehalem")
    assert not runs and products.startswith("the kernels")
    if best > 0:
        assert "OPENBLAS_CORETYPE" in products


def test_bptt_chunk_products_run_in_blas_at_level_1_from_a_layer_size_on():
    best, _, _ = config_in_subprocess(None)
    if best < 1:
        pytest.skip("this CPU does not run level 1 (AVX2)")
    script = ("from cyrnn import _cpu; n = _cpu.BLAS_GRADIENT_WEIGHTS; "
              "print(_cpu.blas_runs_gradients(n - 1), _cpu.blas_runs_gradients(n))")
    for products, want in ((None, "False True"), ("kernels", "False False"),
                           ("blas", "True True")):
        environment = {k: v for k, v in os.environ.items() if k != "CYRNN_PRODUCTS"}
        environment.update(CYRNN_CPU_LEVEL="1", **({"CYRNN_PRODUCTS": products} if products else {}))
        environment["PYTHONPATH"] = os.path.dirname(os.path.dirname(cyrnn.__file__))
        done = subprocess.run([sys.executable, "-c", script], env=environment,
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.split() == want.split(), (products, done.stderr)
    assert "BPTT's dx and weight gradients in BLAS" in products_in_subprocess("1")[1]
    assert "BPTT" not in products_in_subprocess("1", products="kernels")[1]
    if best > 1:  # AVX-512's kernels keep up with BLAS
        assert "BPTT" not in products_in_subprocess(None)[1]


@pytest.mark.parametrize("cap", [None, "0"])
def test_cyrnn_products_chooses_either_way_whatever_the_level(cap):
    runs, products = products_in_subprocess(cap, products="blas")
    assert runs and products.startswith("BLAS") and "CYRNN_PRODUCTS=blas" in products
    runs, products = products_in_subprocess(cap, products="Kernels")
    assert not runs and "CYRNN_PRODUCTS=kernels" in products
    default = products_in_subprocess(cap)
    assert products_in_subprocess(cap, products="gpu") == default  # not a choice: ignored


def test_show_config_prints_every_section(capsys):
    assert cyrnn.show_config() is None
    printed = capsys.readouterr().out
    for section in ("kernels:", "blas:", "openmp:", "threads:"):
        assert section in printed
    config = cyrnn.show_config(mode="dicts")
    assert config["threads"] == cyrnn.get_num_threads()
    assert config["blas"]["name"]


def test_show_config_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        cyrnn.show_config(mode="json")
