"""Any memory layout or numeric type of the inputs gives the numbers of a
clean C-contiguous float copy."""
import numpy as np
import pytest

from helpers import make_model, random_like_states

CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


def variants(a):
    """The same values in other layouts: Fortran, strided view, read-only."""
    fortran = np.asfortranarray(a)
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    readonly = a.copy()
    readonly.setflags(write=False)
    return {"fortran": fortran, "strided": wide[..., ::2], "readonly": readonly,
            "reversed_copy": a[::-1].copy()[::-1]}


def call_all(model, x, hx, dy=None, dhn=None):
    y, hn = model(x, hx)
    y2, hn2, tape = model.forward(x, hx)
    grads = model.backward(tape, y if dy is None else dy, dhn)
    return y, hn, grads


def assert_same(a, b):
    if isinstance(a, tuple):
        for p, q in zip(a, b):
            assert_same(p, q)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_layouts_match_contiguous(cell, dtype):
    model = make_model(cell, 4, 5, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4)).astype(dtype)
    _, hn = model(x)
    hx = tuple(s.astype(dtype) for s in random_like_states(rng, hn)) if isinstance(hn, tuple) \
        else random_like_states(rng, hn).astype(dtype)
    dy = rng.standard_normal((6, 3, 10)).astype(dtype)
    reference = call_all(model, x, hx, dy)
    for name, x_variant in variants(x).items():
        assert_same(call_all(model, x_variant, hx, dy), reference)
    for name, dy_variant in variants(dy).items():
        assert_same(call_all(model, x, hx, dy_variant), reference)
    hx_variants = (tuple(np.asfortranarray(s) for s in hx) if isinstance(hx, tuple)
                   else np.asfortranarray(hx))
    assert_same(call_all(model, x, hx_variants, dy), reference)


@pytest.mark.parametrize("cell", CELLS)
def test_integer_and_list_inputs_convert(cell):
    model = make_model(cell, 3, 4, dtype=np.float64, seed=1)
    x_int = np.arange(24).reshape(4, 2, 3) % 5 - 2
    reference = model(x_int.astype(np.float64))
    assert_same(model(x_int), reference)
    assert_same(model(x_int.tolist()), reference)
    assert_same(model(x_int.astype(np.float32)), reference)  # converted to the model's dtype


@pytest.mark.parametrize("cell", CELLS)
def test_output_dtype_follows_model(cell):
    for dtype in (np.float32, np.float64):
        model = make_model(cell, 3, 4, dtype=dtype)
        y, hn = model(np.ones((2, 1, 3), np.float64 if dtype == np.float32 else np.float32))
        assert y.dtype == dtype
        for state in (hn if isinstance(hn, tuple) else (hn,)):
            assert state.dtype == dtype


@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_and_unbatched_agree_with_time_major(cell):
    rng = np.random.default_rng(2)
    tm = make_model(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=4)
    bf = make_model(cell, 3, 4, num_layers=2, bidirectional=True, batch_first=True,
                    dtype=np.float64, seed=4)
    x = rng.standard_normal((5, 3, 3))
    y_tm, hn_tm = tm(x)
    y_bf, hn_bf = bf(x.transpose(1, 0, 2))
    np.testing.assert_array_equal(y_bf, y_tm.transpose(1, 0, 2))
    assert_same(hn_bf, hn_tm)
    y_one, hn_one = tm(x[:, 1])
    np.testing.assert_allclose(y_one, y_tm[:, 1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(hn_one if not isinstance(hn_one, tuple) else hn_one[0],
                               (hn_tm if not isinstance(hn_tm, tuple) else hn_tm[0])[:, 1],
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_equal_running_each_sequence_alone(cell):
    """Variable lengths behave as packed sequences: each sequence gives what it
    gives run alone on its own valid steps, and y is zero past its end."""
    rng = np.random.default_rng(3)
    model = make_model(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=5)
    x = rng.standard_normal((7, 4, 3))
    lengths = np.array([3, 7, 1, 5])
    y, hn = model(x, lengths=lengths)
    for b, n in enumerate(lengths):
        y_b, hn_b = model(x[:n, b:b + 1])
        np.testing.assert_allclose(y[:n, b], y_b[:, 0], rtol=1e-12, atol=1e-14)
        assert not y[n:, b].any()
        for got, want in zip(hn if isinstance(hn, tuple) else (hn,),
                             hn_b if isinstance(hn_b, tuple) else (hn_b,)):
            np.testing.assert_allclose(got[:, b], want[:, 0], rtol=1e-12, atol=1e-14)
