"""cyrnn.Linear: shapes, torch's parameters and init, finite-difference
gradients, layouts and dtypes, state_dict, tapes and bad input."""
import numpy as np
import pytest

import cyrnn
from cyrnn._tape import Gradients
from helpers import assert_input_grad_only_leaves_out_dx, assert_same_gradients, finite_difference


DTYPES = [np.float32, np.float64]


def test_parameters_follow_torch_names_shapes_and_init():
    m = cyrnn.Linear(5, 3, seed=0)
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias"]
    assert sd["weight"].shape == (3, 5) and sd["bias"].shape == (3,)
    assert all(v.dtype == np.float32 for v in sd.values())
    bound = 1 / np.sqrt(5)
    for v in sd.values():
        assert np.all(np.abs(v) <= bound)
    # reproducible from seed: weight drawn first, then bias, with default_rng
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(sd["weight"], rng.uniform(-bound, bound, (3, 5)).astype(np.float32))
    np.testing.assert_array_equal(sd["bias"], rng.uniform(-bound, bound, (3,)).astype(np.float32))
    other = cyrnn.Linear(5, 3, seed=0).state_dict()
    np.testing.assert_array_equal(other["weight"], sd["weight"])
    assert list(cyrnn.Linear(5, 3, bias=False).state_dict()) == ["weight"]


def test_init_spreads_over_the_bound():
    w = cyrnn.Linear(100, 200, seed=1, dtype=np.float64).state_dict()["weight"]
    assert w.max() > 0.09 and w.min() < -0.09 and np.abs(w).max() <= 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 5), (2, 1, 3, 5), (1, 5)])
def test_forward_matches_numpy(dtype, shape):
    m = cyrnn.Linear(5, 3, dtype=dtype, seed=2)
    x = np.random.default_rng(0).standard_normal(shape)
    y = m(x)
    sd = m.state_dict()
    expected = x.astype(dtype) @ sd["weight"].T + sd["bias"]
    assert y.shape == shape[:-1] + (3,) and y.dtype == dtype
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, expected, **tol)
    y_train, tape = m.forward(x)
    np.testing.assert_array_equal(y_train, y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5), (6, 5)], ids=["TBF", "NF"])
def test_gradients_match_finite_differences(shape, bias):
    rng = np.random.default_rng(3)
    m = cyrnn.Linear(5, 4, bias=bias, dtype=np.float64, seed=4)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (4,))
    y, tape = m.forward(x)
    g = m.backward(tape, dy)
    assert isinstance(g, Gradients) and g.hx is None
    assert set(g.params) == set(m.state_dict())
    params = m.parameters()

    def loss():
        return np.sum(m(x) * dy)

    np.testing.assert_allclose(g.input, finite_difference(loss, x), rtol=1e-7, atol=1e-9)
    for name, value in params.items():
        assert g.params[name].shape == value.shape and g.params[name].dtype == np.float64
        np.testing.assert_allclose(g.params[name], finite_difference(loss, value),
                                   rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_input_layout_gives_the_same_numbers(dtype):
    m = cyrnn.Linear(6, 3, dtype=dtype, seed=5)
    rng = np.random.default_rng(6)
    base = rng.standard_normal((5, 4, 6)).astype(dtype)
    dy = rng.standard_normal((5, 4, 3))
    y_ref, tape = m.forward(base)
    g_ref = m.backward(tape, dy)
    big = rng.standard_normal((10, 4, 12)).astype(dtype)
    big[::2, :, ::2] = base
    fortran = np.asfortranarray(base)
    readonly = base.copy()
    readonly.flags.writeable = False
    transposed = np.ascontiguousarray(base.transpose(1, 0, 2)).transpose(1, 0, 2)
    for x in (big[::2, :, ::2], fortran, readonly, transposed, base.tolist()):
        np.testing.assert_array_equal(m(x), y_ref)
        y, tape = m.forward(x)
        np.testing.assert_array_equal(y, y_ref)
        assert_same_gradients(m.backward(tape, np.asfortranarray(dy)), g_ref)


def test_integer_input_is_converted():
    m = cyrnn.Linear(3, 2, dtype=np.float64, seed=0)
    x = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(m(x), m(x.astype(np.float64)))
    np.testing.assert_array_equal(m(x.astype(bool)), m(x.astype(bool).astype(float)))


def test_backward_twice_and_after_in_place_updates_is_the_same():
    m = cyrnn.Linear(4, 3, dtype=np.float64, seed=1)
    x = np.random.default_rng(0).standard_normal((5, 4))
    dy = np.ones((5, 3))
    _, tape = m.forward(x)
    first = m.backward(tape, dy)
    x += 100.0                            # the caller's input changes
    m.parameters()["weight"][...] += 5.0  # an optimizer updates in place
    second = m.backward(tape, dy)
    np.testing.assert_array_equal(first.input, second.input)
    np.testing.assert_array_equal(first.params["weight"], second.params["weight"])
    # results are fresh arrays, not views of the tape
    first.input[...] = 0
    np.testing.assert_array_equal(m.backward(tape, dy).input, second.input)


def test_nan_propagates():
    m = cyrnn.Linear(3, 2, dtype=np.float64, seed=0)
    x = np.zeros((2, 3))
    x[0, 1] = np.nan
    y = m(x)
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1]))


def test_state_dict_round_trip_and_copies():
    m = cyrnn.Linear(3, 2, seed=0)
    sd = m.state_dict()
    sd["weight"][...] = 7
    assert not np.any(m.state_dict()["weight"] == 7)
    new = {"weight": np.arange(6.0).reshape(2, 3), "bias": [1, 2]}
    m.load_state_dict(new)
    np.testing.assert_array_equal(m.state_dict()["weight"], np.arange(6.0).reshape(2, 3))
    assert m.state_dict()["bias"].dtype == np.float32
    np.testing.assert_array_equal(m(np.ones((1, 3))), [[4.0, 14.0]])


def test_parameters_are_the_live_arrays():
    m = cyrnn.Linear(3, 2, seed=0)
    p = m.parameters()
    p["bias"][...] = 10
    np.testing.assert_array_equal(m.state_dict()["bias"], [10, 10])


@pytest.mark.parametrize("mapping, fragment", [
    ({"weight": np.zeros((2, 3))}, "missing ['bias']"),
    ({"weight": np.zeros((2, 3)), "bias": np.zeros(2), "extra": 1}, "unexpected ['extra']"),
    ({"weight": np.zeros((3, 2)), "bias": np.zeros(2)}, "state_dict['weight']"),
    ({"weight": np.zeros((2, 3)), "bias": np.zeros(3)}, "state_dict['bias']"),
])
def test_load_state_dict_rejects_and_changes_nothing(mapping, fragment):
    m = cyrnn.Linear(3, 2, seed=0)
    before = m.state_dict()
    with pytest.raises(ValueError) as info:
        m.load_state_dict(mapping)
    assert fragment in str(info.value)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_and_bad_types():
    m = cyrnn.Linear(3, 2, seed=0)
    m.load_state_dict({"bias": [5, 6], "other": 0}, strict=False)
    np.testing.assert_array_equal(m.state_dict()["bias"], [5, 6])
    with pytest.raises(ValueError, match=r"state_dict\['weight'\]"):
        m.load_state_dict({"weight": np.zeros(3)}, strict=False)
    with pytest.raises(TypeError, match="state_dict"):
        m.load_state_dict([1, 2])
    with pytest.raises(TypeError, match=r"state_dict\['bias'\]"):
        m.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2, complex)})


def test_stale_tape_after_load_state_dict():
    m = cyrnn.Linear(3, 2, seed=0)
    _, tape = m.forward(np.ones((4, 3)))
    m.load_state_dict(m.state_dict())
    with pytest.raises(ValueError, match="stale"):
        m.backward(tape, np.ones((4, 2)))


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(in_features=0, out_features=2), ValueError, "in_features"),
    (dict(in_features=3, out_features=2.5), TypeError, "out_features"),
    (dict(in_features=3, out_features=2, bias=1), TypeError, "bias"),
    (dict(in_features=3, out_features=2, dtype=np.int32), ValueError, "dtype"),
    (dict(in_features=3, out_features=2, seed=-1), TypeError, "seed"),
])
def test_bad_constructor_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        cyrnn.Linear(**kwargs)


@pytest.mark.parametrize("x, error, fragments", [
    (np.ones((4, 5)), ValueError, ["x", "in_features=3", "(4, 5)"]),
    (np.ones((2, 4, 2)), ValueError, ["x", "in_features=3", "(2, 4, 2)"]),
    (np.ones(3), ValueError, ["x", "leading axis", "(3,)"]),
    (np.float64(1.0), ValueError, ["x", "()"]),
    (np.ones((4, 3), complex), TypeError, ["x", "complex"]),
    (np.array([["a", "b", "c"]]), TypeError, ["x"]),
    ([[1, 2], [3]], TypeError, ["x"]),
])
def test_bad_input(x, error, fragments):
    m = cyrnn.Linear(3, 2, seed=0)
    for call in (m, m.forward):
        with pytest.raises(error) as info:
            call(x)
        for fragment in fragments:
            assert fragment in str(info.value)


def test_bad_backward_arguments():
    m = cyrnn.Linear(3, 2, seed=0)
    other = cyrnn.Linear(3, 2, seed=0)
    _, tape = m.forward(np.ones((5, 4, 3)))
    _, other_tape = other.forward(np.ones((5, 4, 3)))
    with pytest.raises(ValueError, match="another Linear"):
        m.backward(other_tape, np.ones((5, 4, 2)))
    with pytest.raises(TypeError, match="tape"):
        m.backward("tape", np.ones((5, 4, 2)))
    lstm = cyrnn.LSTM(3, 2)
    _, _, lstm_tape = lstm.forward(np.ones((5, 4, 3)))
    with pytest.raises(TypeError, match="tape"):
        m.backward(lstm_tape, np.ones((5, 4, 2)))
    with pytest.raises(ValueError) as info:
        m.backward(tape, np.ones((5, 4, 3)))
    assert "dy" in str(info.value) and "(5, 4, 2)" in str(info.value) \
        and "(5, 4, 3)" in str(info.value)
    with pytest.raises(ValueError, match="dy"):
        m.backward(tape, np.ones((20, 2)))
    with pytest.raises(TypeError, match="dy"):
        m.backward(tape, np.ones((5, 4, 2), complex))


def test_empty_leading_axis_is_allowed():
    m = cyrnn.Linear(3, 2, dtype=np.float64, seed=0)
    y, tape = m.forward(np.ones((0, 4, 3)))
    assert y.shape == (0, 4, 2)
    g = m.backward(tape, np.ones((0, 4, 2)))
    assert g.input.shape == (0, 4, 3)
    np.testing.assert_array_equal(g.params["weight"], np.zeros((2, 3)))
    np.testing.assert_array_equal(g.params["bias"], np.zeros(2))


def test_configuration_and_repr():
    m = cyrnn.Linear(3, 2, bias=False, dtype=np.float64)
    assert (m.in_features, m.out_features, m.bias, m.dtype) == (3, 2, False, np.float64)
    assert repr(m) == "Linear(3, 2, bias=False, dtype=float64)"
    with pytest.raises(AttributeError):
        m.in_features = 4


def test_input_grad_false_leaves_out_only_the_input_gradient():
    m = cyrnn.Linear(4, 3, dtype=np.float64, seed=1)
    _, tape = m.forward(np.random.default_rng(0).standard_normal((5, 4)))
    dy = np.random.default_rng(1).standard_normal((5, 3))
    full = m.backward(tape, dy)
    assert full.input.shape == (5, 4) and full.params.keys() == {"weight", "bias"}
    assert_input_grad_only_leaves_out_dx(full, m.backward(tape, dy, input_grad=False))
    with pytest.raises(TypeError, match="input_grad"):
        m.backward(tape, dy, input_grad=None)
