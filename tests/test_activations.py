"""The C kernels' own sigmoid and tanh (vectorizable, not libm's) are
accurate and finite for any argument, and propagate NaN."""
import numpy as np
import pytest

from cyrnn._kernel_probe import activation

REFERENCE = {"sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh}
# Below these magnitudes sigmoid's error is judged in absolute terms: the
# kernels clamp the argument so that results stay normal numbers, not
# subnormals (slow on many CPUs).
TINY = {np.float32: 1e-27, np.float64: 1e-288}


def grid(dtype):
    x = np.concatenate([np.linspace(-30, 30, 200001), np.geomspace(1e-30, 1e4, 2000),
                        -np.geomspace(1e-30, 1e4, 2000), [0.0, -0.0, 1e30, -1e30]])
    return x.astype(dtype)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype,ulps", [(np.float32, 4), (np.float64, 4)])
def test_accurate_to_a_few_ulps(name, dtype, ulps):
    x = grid(dtype)
    got = activation(name, x)
    with np.errstate(over="ignore"):
        want = REFERENCE[name](x.astype(np.longdouble))
    assert got.dtype == dtype and np.all(np.isfinite(got))
    eps = np.finfo(dtype).eps
    err = np.abs(got - want) / np.maximum(np.abs(want), TINY[dtype])
    assert err.max() <= ulps * eps, (x[np.argmax(err)], err.max() / eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_limits_and_special_values(dtype):
    x = np.array([-np.inf, -1e4, 1e4, np.inf, np.nan], dtype=dtype)
    s, t = activation("sigmoid", x), activation("tanh", x)
    np.testing.assert_array_equal(t[:4], [-1, -1, 1, 1])
    np.testing.assert_array_equal(s[2:4], [1, 1])
    assert 0 <= s[0] < 1e-30 and 0 <= s[1] < 1e-30
    assert np.isnan(s[4]) and np.isnan(t[4])


def test_monotone_and_odd():
    x = np.linspace(-12, 12, 100001)
    t = activation("tanh", x)
    assert np.all(np.diff(t) >= 0)
    np.testing.assert_array_equal(t, -activation("tanh", -x))
    s = activation("sigmoid", x)
    assert np.all(np.diff(s) >= 0)
