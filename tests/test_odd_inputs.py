"""Odd but valid inputs (batch of one, single steps, sizes of one, B > T, very
long T, nested lists, integer/bool/other-float arrays, small integer
lengths) give what the clean float64 / C-contiguous equivalent gives, and no
call ever writes into its arguments."""
import numpy as np
import pytest

from helpers import finite_difference, make_model, random_like_states, weighted_loss

CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
CLOSE = dict(rtol=1e-12, atol=1e-14)  # float64, another BLAS blocking at most


def as_tuple(states):
    return states if isinstance(states, tuple) else (states,)


def assert_same(a, b, exact=True):
    """Element-wise equality of nested outputs (tuples, Gradients, dicts)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key], exact)
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for p, q in zip(a, b):
            assert_same(p, q, exact)
    elif exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, **CLOSE)


def states_like(rng, hn, dtype=np.float64):
    return tuple(s.astype(dtype) for s in random_like_states(rng, hn)) \
        if isinstance(hn, tuple) else random_like_states(rng, hn).astype(dtype)


def train(model, x, hx=None, lengths=None, dy=None, dhn=None, seed=7):
    """(y, h_n, gradients) of a training pass with a fixed random dy."""
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape)
    return y, hn, model.backward(tape, dy, dhn)


# -- shapes at the edges ------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_batch_of_one_equals_its_row_in_a_larger_batch_and_unbatched(cell):
    model = make_model(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 3))
    _, hn = model(x)
    hx = states_like(rng, hn)
    dy = rng.standard_normal((6, 3, 8))
    y_all, hn_all, g_all = train(model, x, hx, dy=dy)
    b = 1
    hx_one = tuple(s[:, b:b + 1] for s in hx) if isinstance(hx, tuple) else hx[:, b:b + 1]
    y, hn, g = train(model, x[:, b:b + 1], hx_one, dy=dy[:, b:b + 1])
    np.testing.assert_allclose(y[:, 0], y_all[:, b], **CLOSE)
    for got, want in zip(as_tuple(hn), as_tuple(hn_all)):
        np.testing.assert_allclose(got[:, 0], want[:, b], **CLOSE)
    np.testing.assert_allclose(g.input[:, 0], g_all.input[:, b], **CLOSE)
    # unbatched (T, I) is the batch of one without its batch axis, exactly
    hx_unbatched = tuple(s[:, 0] for s in hx_one) if isinstance(hx, tuple) else hx_one[:, 0]
    y_u, hn_u, g_u = train(model, x[:, b], hx_unbatched, dy=dy[:, b])
    np.testing.assert_allclose(y_u, y[:, 0], **CLOSE)
    np.testing.assert_allclose(g_u.input, g.input[:, 0], **CLOSE)
    assert_same(g_u.params, g.params, exact=False)


@pytest.mark.parametrize("cell", CELLS)
def test_single_steps_chained_through_the_state_equal_the_whole_sequence(cell):
    """T = 1 calls, each fed the previous h_n, give the full run's y and h_n."""
    model = make_model(cell, 3, 4, num_layers=2, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 2, 3))
    y_full, hn_full = model(x)
    state, ys = None, []
    for t in range(x.shape[0]):
        y_t, state = model(x[t:t + 1], state)
        assert y_t.shape == (1, 2, 4)
        ys.append(y_t)
    np.testing.assert_allclose(np.concatenate(ys), y_full, **CLOSE)
    for got, want in zip(as_tuple(state), as_tuple(hn_full)):
        np.testing.assert_allclose(got, want, **CLOSE)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [[1, 1, 1], np.ones(3, np.uint8)])
def test_one_step_with_lengths_equals_one_step_without(cell, lengths):
    model = make_model(cell, 3, 4, bidirectional=True, dtype=np.float64, seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 3))
    reference = train(model, x)
    assert_same(train(model, x, lengths=lengths), reference)


@pytest.mark.parametrize("cell", CELLS)
def test_batch_much_larger_than_time(cell):
    """B = 40 sequences of T = 2 steps with mixed lengths: each equals the
    sequence run alone on its own steps."""
    model = make_model(cell, 2, 3, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 40, 2))
    lengths = rng.integers(1, 3, size=40)
    y, hn, g = train(model, x, lengths=lengths)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    for b in (0, 1, 17, 39):
        n = lengths[b]
        y_b, hn_b, g_b = train(model, x[:n, b:b + 1], dy=dy[:n, b:b + 1])
        np.testing.assert_allclose(y[:n, b], y_b[:, 0], **CLOSE)
        assert not y[n:, b].any()
        for got, want in zip(as_tuple(hn), as_tuple(hn_b)):
            np.testing.assert_allclose(got[:, b], want[:, 0], **CLOSE)
        np.testing.assert_allclose(g.input[:n, b], g_b.input[:, 0], **CLOSE)
        assert not g.input[n:, b].any()


@pytest.mark.parametrize("cell", CELLS)
def test_very_long_sequence_of_one_equals_two_chained_halves(cell):
    """T = 20,000 steps, B = 1, forward and BPTT: the whole run equals two
    halves chained through the state, the second half's dL/dh0 fed to the
    first half's backward as dL/dh_n."""
    T, split = 20_000, 12_345
    model = make_model(cell, 2, 3, dtype=np.float64, seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, 1, 2))
    dy = rng.standard_normal((T, 1, 3))
    y, hn, tape = model.forward(x)
    g = model.backward(tape, dy)
    assert np.isfinite(y).all() and np.isfinite(g.input).all()

    y1, hn1, tape1 = model.forward(x[:split])
    y2, hn2, tape2 = model.forward(x[split:], hn1)
    g2 = model.backward(tape2, dy[split:])
    g1 = model.backward(tape1, dy[:split], g2.hx)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y, **tol)
    for got, want in zip(as_tuple(hn2), as_tuple(hn)):
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(np.concatenate([g1.input, g2.input]), g.input, **tol)
    for got, want in zip(as_tuple(g1.hx), as_tuple(g.hx)):
        np.testing.assert_allclose(got, want, **tol)
    for key in g.params:
        np.testing.assert_allclose(g1.params[key] + g2.params[key], g.params[key],
                                   err_msg=key, **tol)


# -- sizes of one ---------------------------------------------------------------------

def scalar_reference(cell, p, xs, h, c=0.0):
    """A one-unit, one-input cell written out with Python floats."""
    import math

    def sig(v):
        return 1 / (1 + math.exp(-v))

    w, u = p["weight_ih_l0"][:, 0], p["weight_hh_l0"][:, 0]
    b = p["bias_ih_l0"] + p["bias_hh_l0"]
    ys = []
    for x in xs:
        if cell == "LSTM":
            pre = [w[k] * x + u[k] * h + b[k] for k in range(4)]
            c = sig(pre[1]) * c + sig(pre[0]) * math.tanh(pre[2])
            h = sig(pre[3]) * math.tanh(c)
        elif cell == "GRU":
            r = sig(w[0] * x + u[0] * h + b[0])
            z = sig(w[1] * x + u[1] * h + b[1])
            n = math.tanh(w[2] * x + p["bias_ih_l0"][2]
                          + r * (u[2] * h + p["bias_hh_l0"][2]))
            h = (1 - z) * n + z * h
        else:
            pre = w[0] * x + u[0] * h + b[0]
            h = math.tanh(pre) if cell == "RNN_TANH" else max(pre, 0.0)
        ys.append(h)
    return np.array(ys), h, c


@pytest.mark.parametrize("cell", CELLS)
def test_input_size_one_and_hidden_size_one_forward(cell):
    model = make_model(cell, 1, 1, dtype=np.float64, seed=5)
    params = model.state_dict()
    if cell == "RNN_RELU":
        params["bias_ih_l0"] += 1.0  # stay mostly on relu's live side
        model.load_state_dict(params)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 1))  # unbatched (T, 1)
    h0, c0 = 0.3, -0.2
    hx = (np.array([[h0]]), np.array([[c0]])) if cell == "LSTM" else np.array([[h0]])
    y, hn = model(x, hx)
    want_y, want_h, want_c = scalar_reference(cell, params, x[:, 0], h0, c0)
    np.testing.assert_allclose(y[:, 0], want_y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(as_tuple(hn)[0], [[want_h]], rtol=1e-13, atol=1e-15)
    if cell == "LSTM":
        np.testing.assert_allclose(hn[1], [[want_c]], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
def test_input_size_one_and_hidden_size_one_backward(cell):
    model = make_model(cell, 1, 1, num_layers=2, bidirectional=True, dtype=np.float64, seed=6)
    if cell == "RNN_RELU":
        model.load_state_dict({k: v + (0.5 if k.startswith("bias") else 0.0)
                               for k, v in model.state_dict().items()})
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 2, 1))
    _, hn = model(x)
    hx = states_like(rng, hn)
    y, hn, tape = model.forward(x, hx)
    dy, dhn = rng.standard_normal(y.shape), states_like(rng, hn)
    grads = model.backward(tape, dy, dhn)

    def loss():
        y, hn = model(x, hx)
        return weighted_loss(y, hn, dy, dhn)

    np.testing.assert_allclose(grads.input, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    for state, grad in zip(as_tuple(hx), as_tuple(grads.hx)):
        np.testing.assert_allclose(grad, finite_difference(loss, state), rtol=1e-6, atol=1e-8)
    for key, value in model.parameters().items():
        np.testing.assert_allclose(grads.params[key], finite_difference(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


# -- argument types -----------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hx_as_nested_lists(cell, dtype):
    model = make_model(cell, 3, 4, num_layers=2, dtype=dtype, seed=8)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    _, hn = model(x)
    hx = states_like(rng, hn, dtype)
    as_lists = tuple(s.tolist() for s in hx) if isinstance(hx, tuple) else hx.tolist()
    assert_same(train(model, x, as_lists), train(model, x, hx))
    assert_same(model(x, as_lists), model(x, hx))
    if isinstance(hx, tuple):  # a list pair works as the tuple pair
        assert_same(model(x, list(as_lists)), model(x, hx))
    # unbatched x with unbatched nested-list states
    hx1 = tuple(s[:, 0] for s in hx) if isinstance(hx, tuple) else hx[:, 0]
    lists1 = tuple(s.tolist() for s in hx1) if isinstance(hx1, tuple) else hx1.tolist()
    assert_same(model(x[:, 0], lists1), model(x[:, 0], hx1))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dy_and_dhn_of_other_dtypes_equal_their_conversion(cell, dtype):
    model = make_model(cell, 3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=9)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    y, hn, tape = model.forward(x)
    dy = rng.integers(-3, 4, size=y.shape)
    dhn = tuple(rng.integers(-3, 4, size=s.shape) for s in as_tuple(hn))
    dhn = dhn if isinstance(hn, tuple) else dhn[0]

    def convert(value, to):
        return tuple(v.astype(to) for v in value) if isinstance(value, tuple) else value.astype(to)

    reference = model.backward(tape, convert(dy, dtype), convert(dhn, dtype))
    for other in (np.int64, np.int8, np.int16, np.float16, np.float32, np.float64,
                  np.longdouble, ">f8", bool):
        if other is bool:
            dy_o, dhn_o = dy > 0, convert(dhn, bool)
            ref = model.backward(tape, (dy > 0).astype(dtype), convert(convert(dhn, bool), dtype))
        else:
            dy_o, dhn_o, ref = convert(dy, other), convert(dhn, other), reference
        assert_same(model.backward(tape, dy_o, dhn_o), ref)
    assert_same(model.backward(tape, dy.tolist(), dhn), reference)  # nested lists too


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_of_any_integer_kind(cell):
    model = make_model(cell, 3, 4, bidirectional=True, dtype=np.float64, seed=10)
    x = np.random.default_rng(10).standard_normal((6, 4, 3))
    lengths = np.array([6, 2, 5, 1], dtype=np.int64)
    reference = train(model, x, lengths=lengths)
    variants = {
        "list": lengths.tolist(),
        "tuple": tuple(lengths.tolist()),
        "list of numpy ints": [np.int32(n) for n in lengths],
        "uint8": lengths.astype(np.uint8),
        "int16": lengths.astype(np.int16),
        "int8": lengths.astype(np.int8),
        "uint64": lengths.astype(np.uint64),
        "big-endian": lengths.astype(">i4"),
        "reversed view": lengths[::-1].copy()[::-1],
        "read-only": lengths.copy(),
    }
    variants["read-only"].setflags(write=False)
    for name, value in variants.items():
        y, hn, g = train(model, x, lengths=value)
        assert_same((y, hn, g.input, g.hx, g.params),
                    (reference[0], reference[1], reference[2].input, reference[2].hx,
                     reference[2].params))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bool_and_other_real_inputs_equal_their_float_conversion(cell, dtype):
    model = make_model(cell, 3, 4, num_layers=2, dtype=dtype, seed=11)
    rng = np.random.default_rng(11)
    mask = rng.random((5, 2, 3)) < 0.5
    assert_same(train(model, mask), train(model, mask.astype(dtype)))
    assert_same(model(mask), model(mask.astype(dtype)))
    assert_same(model(mask.tolist()), model(mask.astype(dtype)))
    x = rng.standard_normal((5, 2, 3))
    for other in (np.float16, np.longdouble, ">f8", "<f4"):
        converted = x.astype(other)
        assert_same(train(model, converted), train(model, converted.astype(dtype)))
    # zero strides (a broadcast view, read-only) equal the materialised copy
    row = x[:, :1]
    broadcast = np.broadcast_to(row, (5, 4, 3))
    assert_same(train(model, broadcast), train(model, np.ascontiguousarray(broadcast)))


# -- nothing is written into the arguments -------------------------------------------

MUTATION_CASES = {
    "LSTM-layers2-bidirectional-dropout-lengths": (
        "LSTM", dict(num_layers=2, bidirectional=True, dropout=0.5), True, False),
    "LSTM-proj": ("LSTM", dict(proj_size=2), False, False),
    "GRU-layers3-dropout": ("GRU", dict(num_layers=3, dropout=0.3), False, False),
    "GRU-batch_first-lengths": ("GRU", dict(batch_first=True, bidirectional=True), True, False),
    "RNN_TANH-unbatched": ("RNN_TANH", dict(num_layers=2, bidirectional=True), False, True),
    "RNN_RELU-lengths": ("RNN_RELU", dict(num_layers=2, dropout=0.2), True, False),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("readonly", [False, True], ids=["writable", "readonly"])
@pytest.mark.parametrize("case", MUTATION_CASES)
def test_calls_never_write_into_their_arguments(case, readonly, dtype):
    """Arguments already C-contiguous in the model's dtype are the ones the
    layers could use without a copy, so they are what is checked; read-only
    arrays must work too (and C code does not look at numpy's flag)."""
    cell, options, with_lengths, unbatched = MUTATION_CASES[case]
    model = make_model(cell, 3, 4, dtype=dtype, seed=12, **options)
    rng = np.random.default_rng(12)
    shape = (5, 3) if unbatched else ((4, 5, 3) if model.batch_first else (5, 4, 3))
    x = rng.standard_normal(shape).astype(dtype)
    lengths = np.array([5, 2, 4, 1]) if with_lengths else None
    y, hn = model(x, lengths=lengths)
    hx = states_like(rng, hn, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dhn = states_like(rng, hn, dtype)
    args = [x, dy, *as_tuple(hx), *as_tuple(dhn)] + ([lengths] if with_lengths else [])
    if readonly:
        for a in args:
            a.setflags(write=False)
    saved = [a.copy() for a in args]
    params_before = model.state_dict()

    model(x, hx, lengths=lengths)
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    model.backward(tape, dy, dhn)
    model.backward(tape, dy)
    y2, hn2, tape2 = model.forward(x, lengths=lengths)
    model.backward(tape2, dy, dhn)

    for a, before in zip(args, saved):
        np.testing.assert_array_equal(a, before)
        assert a.flags.writeable is not readonly
    assert_same(model.state_dict(), params_before)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
def test_outputs_are_the_callers_to_overwrite(cell, lengths):
    """y, h_n and the gradients may share memory with the tape's buffers
    only if backward never reads them: scribbling over everything returned
    changes no later result."""
    model = make_model(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=13)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 3, 3))
    dy = rng.standard_normal((5, 3, 8))
    y, hn, tape = model.forward(x, lengths=lengths)
    y_clean, hn_clean = y.copy(), tuple(s.copy() for s in as_tuple(hn))
    first = model.backward(tape, dy)
    reference = (first.input.copy(), tuple(s.copy() for s in as_tuple(first.hx)),
                 {k: v.copy() for k, v in first.params.items()})
    for array in (y, *as_tuple(hn), first.input, *as_tuple(first.hx), *first.params.values()):
        array[...] = np.nan
    second = model.backward(tape, dy)
    assert_same((second.input, as_tuple(second.hx), second.params), reference)
    y_again, hn_again = model(x, lengths=lengths)
    np.testing.assert_array_equal(y_again, y_clean)
    assert_same(as_tuple(hn_again), hn_clean)
