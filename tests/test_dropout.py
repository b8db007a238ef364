"""cyrnn.Dropout: identity at inference, seeded masks in training kept in
the tape, the gradient through the mask, bad arguments; and the warning
torch gives for dropout on a one-layer recurrent model."""
import warnings

import numpy as np
import pytest

import cyrnn
from helpers import finite_difference


def test_inference_is_the_identity():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(cyrnn.Dropout(0.5, seed=0)(x), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_zeroes_a_fraction_p_and_scales_the_rest(dtype):
    x = np.ones((400, 50), dtype)
    y, _ = cyrnn.Dropout(0.3, seed=1).forward(x)
    assert y.dtype == dtype
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_masks_come_from_the_seed_and_change_between_calls():
    x = np.ones((20, 20))
    a, b = cyrnn.Dropout(0.5, seed=7), cyrnn.Dropout(0.5, seed=7)
    first = a.forward(x)[0]
    np.testing.assert_array_equal(first, b.forward(x)[0])
    assert not np.array_equal(first, a.forward(x)[0])


def test_backward_uses_the_forward_mask():
    rng = np.random.default_rng(0)
    drop = cyrnn.Dropout(0.4, seed=3)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    y, tape = drop.forward(x)
    g = drop.backward(tape, dy)
    mask = tape.mask
    expected = finite_difference(lambda: np.sum(x * mask * dy), x)
    np.testing.assert_allclose(g.input, expected, atol=1e-8)
    np.testing.assert_array_equal(y, x * mask)
    assert g.params == {} and g.hx is None


def test_p_zero_and_one():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    y, tape = cyrnn.Dropout(0.0).forward(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(tape.model.backward(tape, x).input, x)
    y, tape = cyrnn.Dropout(1.0, seed=0).forward(x)
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_array_equal(tape.model.backward(tape, x).input, 0)


@pytest.mark.parametrize("make, error, word", [
    (lambda: cyrnn.Dropout(1.5), ValueError, "p"),
    (lambda: cyrnn.Dropout(-0.1), ValueError, "p"),
    (lambda: cyrnn.Dropout("0.5"), TypeError, "p"),
    (lambda: cyrnn.Dropout(0.5, seed=-1), TypeError, "seed"),
    (lambda: cyrnn.Dropout(0.5).forward(np.array(["a"])), TypeError, "x"),
    (lambda: cyrnn.Dropout(0.5).backward(cyrnn.Dropout(0.5).forward(np.ones(2))[1], np.ones(2)),
     ValueError, "another Dropout"),
    (lambda: (lambda d: d.backward(d.forward(np.ones(2))[1], np.ones(3)))(cyrnn.Dropout(0.5)),
     ValueError, "dy"),
    (lambda: cyrnn.Dropout(0.5).backward(None, np.ones(3)), TypeError, "tape"),
    (lambda: cyrnn.Dropout(0.5).load_state_dict({"w": np.ones(1)}), ValueError, "unexpected"),
])
def test_bad_arguments_are_named(make, error, word):
    with pytest.raises(error, match=word):
        make()


def test_recurrent_dropout_on_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        cyrnn.LSTM(2, 3, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cyrnn.GRU(2, 3, num_layers=2, dropout=0.5)
        cyrnn.RNN(2, 3, dropout=0.0)
