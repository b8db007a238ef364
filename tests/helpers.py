"""Shared test helpers: model construction from plain options and a
finite-difference gradient check against the layers' backward."""
import os
import subprocess
import sys

import numpy as np

import cyrnn
from cyrnn.layers import CELL_KEYS as CELLS, make_layer
from reference import WITH_CELL_STATE  # noqa: F401 (for the tests: one definition)


def make_model(cell, input_size=3, hidden_size=4, **options):
    return make_layer(cell, input_size, hidden_size, **options)


def tolerances(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=1e-5, atol=2e-6)


def random_like_states(rng, states):
    if isinstance(states, tuple):
        return tuple(rng.standard_normal(s.shape) for s in states)
    return rng.standard_normal(states.shape)


def weighted_loss(y, hn, dy, dhn):
    """sum(y * dy) + sum(h_n * dh_n) (+ the c_n term for LSTM): its gradient
    with respect to y and h_n is exactly (dy, dhn)."""
    total = np.sum(y * dy)
    if isinstance(hn, tuple):
        return total + sum(np.sum(a * b) for a, b in zip(hn, dhn))
    return total + np.sum(hn * dhn)


def finite_difference(f, value, eps=1e-6):
    """Central differences of the scalar f over every entry of value."""
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        saved = value[index]
        value[index] = saved + eps
        up = f()
        value[index] = saved - eps
        down = f()
        value[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def assert_same_gradients(got, want):
    """Two Gradients hold the same bits: dL/dx and every parameter's."""
    np.testing.assert_array_equal(got.input, want.input)
    assert got.params.keys() == want.params.keys()
    for name in want.params:
        np.testing.assert_array_equal(got.params[name], want.params[name])


def level_environment(cap):
    """This environment with the cap (none for None), and with this process's
    cyrnn first on the path (a source checkout as much as an installed one)."""
    package_parent = os.path.dirname(os.path.dirname(cyrnn.__file__))
    path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, PYTHONPATH=path)
    environment.pop("CYRNN_CPU_LEVEL", None)
    return environment if cap is None else dict(environment, CYRNN_CPU_LEVEL=cap)


def arrays_at_level(code, level, products, out):
    """The arrays `code` leaves in its dict `arrays`, run in a process whose
    kernels are capped at `level` (None: not capped; the level is chosen
    once per process), its products where CYRNN_PRODUCTS says (None: where
    cyrnn chooses), with this directory on its path; `out` is the .npz
    that carries them back."""
    script = (f"import sys, numpy as np\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n"
              f"{code}\nnp.savez({str(out)!r}, **arrays)\n")
    environment = level_environment(None if level is None else str(level))
    environment.pop("CYRNN_PRODUCTS", None)
    if products is not None:
        environment["CYRNN_PRODUCTS"] = products
    done = subprocess.run([sys.executable, "-c", script], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with np.load(out) as arrays:
        return dict(arrays)


def assert_input_grad_only_leaves_out_dx(full, without_dx):
    """backward(..., input_grad=False) skips a product and nothing else:
    every other gradient the same to the bit (full: the same backward with
    dL/dx)."""
    assert without_dx.input is None and full.input is not None
    assert without_dx.params.keys() == full.params.keys()
    for name, want in full.params.items():
        np.testing.assert_array_equal(without_dx.params[name], want, err_msg=name)
    pairs = zip(without_dx.hx, full.hx) if isinstance(full.hx, tuple) else \
        [(without_dx.hx, full.hx)]
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
