"""The C kernels one at a time against numpy (through cyrnn._kernel_probe):
the packed product, the weight-gradient product and one forward step of
each cell, over shapes that leave partial unit blocks and leftover rows at
every tile size; at this CPU's level in process, and at each lower level it
runs in a subprocess (the level is chosen once per process)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyrnn import _cells, _cpu
from cyrnn import _kernel_probe as probe
from helpers import level_environment
from reference import Reference

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def check_product(n, K, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, K)).astype(dtype), rng.standard_normal((H, K)).astype(dtype)
    np.testing.assert_allclose(probe.product(x, w), x.astype(np.float64) @ w.T, **TOL[dtype])


def check_weight_gradients(rows, M, K1, K2, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dg = rng.standard_normal((rows, M)).astype(dtype)
    x1, x2 = (rng.standard_normal((rows, k)).astype(dtype) for k in (K1, K2))
    dw1, dw2, db = probe.weight_gradients(dg, x1, x2)
    wide = dg.astype(np.float64)
    np.testing.assert_allclose(dw1, wide.T @ x1, **TOL[dtype])
    np.testing.assert_allclose(dw2, wide.T @ x2, **TOL[dtype])
    np.testing.assert_allclose(db, wide.sum(axis=0), **TOL[dtype])


# The products a step can be handed done (by BLAS, in the loops): none, its
# input's, or its input's and its state's.
GIVENS = ("none", "input", "both")


def check_step(key, n, I, H, dtype, given="none", seed=0):
    rng = np.random.default_rng(seed)
    cell = _cells.BY_KEY[key]
    GH = cell.gates * H
    params = {"weight_ih_l0": rng.standard_normal((GH, I)), "weight_hh_l0": rng.standard_normal((GH, H)),
              "bias_ih_l0": rng.standard_normal(GH), "bias_hh_l0": rng.standard_normal(GH),
              "weight_peephole_l0": rng.standard_normal((3, H))}
    params = {k: (0.5 * v).astype(dtype) for k, v in params.items()}
    x, h, c = (rng.standard_normal((n, k)).astype(dtype) for k in (I, H, H))
    ref = Reference(key, {k: v.astype(np.float64) for k, v in params.items()})
    _, want_h, want_c, _ = ref.forward(x[None].astype(np.float64), h, c)
    c_out = c.copy()
    got_h = probe.step(cell, x, h, c_out, params["weight_ih_l0"], params["weight_hh_l0"],
                       ref.bias_x.astype(dtype),
                       ref.b_hn.astype(dtype) if cell.bias_hn_apart else np.zeros(H, dtype),
                       params["weight_peephole_l0"], given)
    np.testing.assert_allclose(got_h, want_h, **TOL[dtype])
    if cell.has_cell_state:
        np.testing.assert_allclose(c_out, want_c, **TOL[dtype])


DTYPES = st.sampled_from([np.float32, np.float64])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), K=st.integers(1, 70), H=st.integers(1, 70), dtype=DTYPES)
def test_the_packed_product_is_x_times_w_transposed(n, K, H, dtype):
    check_product(n, K, H, dtype)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 60), M=st.integers(1, 80), K1=st.integers(1, 40),
       K2=st.integers(1, 40), dtype=DTYPES)
def test_the_weight_gradient_kernel_is_dg_transposed_times_x(rows, M, K1, K2, dtype):
    check_weight_gradients(rows, M, K1, K2, dtype)


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(sorted(_cells.BY_KEY)), n=st.integers(1, 30), I=st.integers(1, 40),
       H=st.integers(1, 40), dtype=DTYPES, data=st.data())
def test_one_step_of_each_cell_matches_the_reference(cell, n, I, H, dtype, data):
    check_step(cell, n, I, H, dtype, data.draw(st.sampled_from(GIVENS)))


# n = 13 and 30 leave rows after whole tiles of every size (2 to 16 rows);
# H = 37 a partial unit block at every vector width, H = 48 whole ones.
FIXED = [(n, H) for n in (1, 13, 30) for H in (37, 48)]


def check_fixed_shapes():
    for dtype in (np.float32, np.float64):
        for n, H in FIXED:
            check_product(n, 2 * H + 3, H, dtype)
            check_weight_gradients(n + 240, 4 * H, H + 5, H, dtype)
            for key in _cells.BY_KEY:
                for given in GIVENS:
                    check_step(key, n, 11, H, dtype, given)


def test_the_kernels_at_this_level_on_fixed_shapes():
    check_fixed_shapes()


@pytest.mark.parametrize("level", range(_cpu.kernel_level()))
def test_the_kernels_at_a_lower_level_on_fixed_shapes(level):
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
              "import test_kernels; test_kernels.check_fixed_shapes()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=level_environment(str(level)), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_probe_refuses_shapes_that_would_take_a_kernel_outside_its_arrays():
    one = np.ones((2, 3))
    with pytest.raises(ValueError, match="x"):
        probe.product(np.ones((0, 3)), one)
    with pytest.raises(ValueError, match="dg"):
        probe.weight_gradients(one, np.ones((3, 3)), one)
    with pytest.raises(ValueError, match="w_ih"):
        probe.step(_cells.LSTM, one, np.ones((2, 4)), np.ones((2, 4)), np.ones((15, 3)),
                   np.ones((16, 4)), np.ones(16), np.ones(4), np.ones((3, 4)))
