"""Backward (BPTT) against central finite differences, in float64, for every
parameter, the input and the initial states, over the options grid."""
import numpy as np
import pytest

import cyrnn

from helpers import (CELLS, assert_same_gradients, finite_difference, make_model,
                     random_like_states, weighted_loss)

T, B, I, H = 4, 3, 2, 3
GRID = {
    "base": {},
    "layers3": {"num_layers": 3},
    "bidirectional_layers2": {"bidirectional": True, "num_layers": 2},
    "no_bias": {"bias": False},
    "batch_first": {"batch_first": True},
    "unbatched": {"unbatched": True},
    "lengths_unsorted": {"lengths": [2, 4, 1]},
    "lengths_bidirectional_layers2_batch_first": {
        "lengths": [3, 1, 4], "bidirectional": True, "num_layers": 2, "batch_first": True},
    "unbatched_bidirectional_no_bias": {"unbatched": True, "bidirectional": True, "bias": False},
}
LSTM_GRID = {
    "proj": {"proj_size": 2},
    "proj_bidirectional_layers2_lengths": {
        "proj_size": 1, "bidirectional": True, "num_layers": 2, "lengths": [4, 2, 3]},
}
CASES = [(cell, name, opts) for cell in CELLS for name, opts in GRID.items()]
CASES += [(cell, name, opts) for cell in ("LSTM", "LSTM_PEEPHOLE")
          for name, opts in LSTM_GRID.items()]


def problem(cell, options, seed=0):
    options = dict(options)
    unbatched = options.pop("unbatched", False)
    lengths = options.pop("lengths", None)
    model = make_model(cell, I, H, dtype=np.float64, seed=seed, **options)
    rng = np.random.default_rng(seed)
    if unbatched:
        shape = (T, I)
    else:
        shape = (B, T, I) if options.get("batch_first") else (T, B, I)
    x = rng.standard_normal(shape)
    _, hn = model(x, lengths=None if lengths is None else np.array(lengths))
    hx = random_like_states(rng, hn)
    if cell == "RNN_RELU":
        # Keep pre-activations away from relu's kink, where differences lie.
        model.load_state_dict({k: v + (0.3 if k.startswith("bias") else 0.0)
                               for k, v in model.state_dict().items()})
    return model, x, hx, None if lengths is None else np.array(lengths)


@pytest.mark.parametrize("cell,name,options", CASES, ids=[f"{c}-{n}" for c, n, _ in CASES])
def test_backward_matches_finite_differences(cell, name, options):
    model, x, hx, lengths = problem(cell, options)
    rng = np.random.default_rng(1)
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    # Past a sequence's end y is zero whatever the weights, so dy there must
    # count for nothing; a random dy everywhere checks that too.
    dy, dhn = rng.standard_normal(y.shape), random_like_states(rng, hn)
    grads = model.backward(tape, dy, dhn)

    def loss():
        y, hn = model(x, hx, lengths=lengths)
        return weighted_loss(y, hn, dy, dhn)

    np.testing.assert_allclose(grads.input, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    states = hx if isinstance(hx, tuple) else (hx,)
    got = grads.hx if isinstance(grads.hx, tuple) else (grads.hx,)
    for state, grad in zip(states, got):
        np.testing.assert_allclose(grad, finite_difference(loss, state), rtol=1e-6, atol=1e-8)
    params = model.parameters()
    assert grads.params.keys() == params.keys()
    for key, value in params.items():
        np.testing.assert_allclose(grads.params[key], finite_difference(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_dropout_gradients_use_the_tapes_masks(cell):
    """With dropout the loss depends on the masks drawn in forward(); replaying
    the generator's state replays the masks, so differences are well defined."""
    model = make_model(cell, I, H, num_layers=3, dropout=0.4, bidirectional=True,
                       dtype=np.float64, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, I))
    generator_state = model._rng.bit_generator.state
    y, hn, tape = model.forward(x)
    dy, dhn = rng.standard_normal(y.shape), random_like_states(rng, hn)
    grads = model.backward(tape, dy, dhn)
    y_eval, _ = model(x)
    assert not np.allclose(y, y_eval)  # the masks did act

    def loss():
        model._rng.bit_generator.state = generator_state
        y, hn, _ = model.forward(x)
        return weighted_loss(y, hn, dy, dhn)

    np.testing.assert_allclose(grads.input, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    for key, value in model.parameters().items():
        np.testing.assert_allclose(grads.params[key], finite_difference(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=key)


def test_dhn_parts_may_be_omitted():
    model, x, hx, _ = problem("LSTM", {"num_layers": 2})
    y, (h_n, c_n), tape = model.forward(x, hx)
    dy = np.ones_like(y)
    full = model.backward(tape, dy, (np.zeros_like(h_n), np.zeros_like(c_n)))
    for dhn in (None, (None, None), (np.zeros_like(h_n), None), (None, np.zeros_like(c_n))):
        partial = model.backward(tape, dy, dhn)
        assert_same_gradients(partial, full)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_backward_twice_gives_the_same_gradients(cell):
    model, x, hx, lengths = problem(cell, {"bidirectional": True, "num_layers": 2,
                                           "lengths": [4, 1, 3]})
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    rng = np.random.default_rng(5)
    dy, dhn = rng.standard_normal(y.shape), random_like_states(rng, hn)
    first, second = model.backward(tape, dy, dhn), model.backward(tape, dy, dhn)
    assert_same_gradients(second, first)


@pytest.mark.parametrize("cell,options", [
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "proj_size": 2}),
    ("RNN_RELU", {"bidirectional": True}),
    ("LSTM_PEEPHOLE", {"bidirectional": True, "proj_size": 2}),
    ("GRU_RESET_BEFORE", {"num_layers": 2}),
])
def test_backward_uses_the_weights_forward_used(cell, options):
    """An optimizer may update parameters() in place between forward and
    backward (or between two backward calls): gradients stay those at the
    weights of the forward pass."""
    model, x, hx, lengths = problem(cell, options)
    y, hn, tape = model.forward(x, hx)
    dy = np.ones_like(y)
    before = model.backward(tape, dy)
    for value in model.parameters().values():
        value += 0.5
    after = model.backward(tape, dy)
    assert_same_gradients(after, before)


def test_dy_none_means_a_loss_on_the_final_state_only():
    model, x, hx, _ = problem("GRU", {"num_layers": 2})
    y, h_n, tape = model.forward(x, hx)
    dhn = np.ones_like(h_n)
    without = model.backward(tape, None, dhn)
    zeros = model.backward(tape, np.zeros_like(y), dhn)
    np.testing.assert_array_equal(without.input, zeros.input)
    assert np.abs(without.input).max() > 0


WIDE_LAYERS = [
    ("LSTM", 37),      # 148 gate rows: a partial group of them, in both dtypes
    ("LSTM", 128),     # gate rows of 4 kB (float32): all in the same L1 sets
    ("GRU", 176),      # dW_ih and dW_hh from different pre-activation gradients
    ("RNN_TANH", 520),  # wider than one chunk of rows is long
]


def wide_problem(cell, hidden_size, dtype):
    """Two layers over 520 rows (more than the weight gradients' chunk of 512),
    so that the input and recurrent weights of each layer are both checked."""
    model = make_model(cell, 5, hidden_size, num_layers=2, dtype=dtype, seed=7)
    rng = np.random.default_rng(7)
    x = (0.5 * rng.standard_normal((260, 2, 5))).astype(dtype)
    return model, x, rng


def backward_on_threads(model, tape, dy, threads):
    previous = cyrnn.get_num_threads()
    cyrnn.set_num_threads(threads)
    try:
        return model.backward(tape, dy)
    finally:
        cyrnn.set_num_threads(previous)


@pytest.mark.parametrize("cell,hidden_size", WIDE_LAYERS)
@pytest.mark.parametrize("threads", [1, 2])
def test_weight_gradients_of_wide_layers(cell, hidden_size, threads):
    """dW = dG^T X and the bias gradients, formed a chunk of rows at a time
    with threads sharing the gate rows, agree with central differences along
    a random direction."""
    model, x, rng = wide_problem(cell, hidden_size, np.float64)
    y, hn, tape = model.forward(x)
    dy = rng.standard_normal(y.shape)
    grads = backward_on_threads(model, tape, dy, threads)
    params = model.parameters()
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1",
                 "bias_ih_l0", "bias_hh_l0", "bias_ih_l1", "bias_hh_l1"):
        direction = rng.standard_normal(params[name].shape)
        saved = params[name].copy()
        losses = []
        for sign in (1, -1):
            params[name][...] = saved + sign * 1e-6 * direction
            losses.append(np.sum(model(x)[0] * dy))
        params[name][...] = saved
        numeric = (losses[0] - losses[1]) / 2e-6
        analytic = np.sum(grads.params[name] * direction)
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), name


@pytest.mark.parametrize("cell,hidden_size", WIDE_LAYERS)
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_weight_gradients_of_wide_layers_match_float64(cell, hidden_size, threads):
    """The float32 kernels (twice as many units per vector) give the float64
    gradients of the same weights, to float32's accuracy over 520 rows."""
    model32, x32, rng = wide_problem(cell, hidden_size, np.float32)
    model64, x64, _ = wide_problem(cell, hidden_size, np.float64)
    for name, value in model32.parameters().items():
        model64.parameters()[name][...] = value
    x64[...] = x32
    dy = rng.standard_normal((260, 2, hidden_size))
    grads32 = backward_on_threads(model32, model32.forward(x32)[2], dy.astype(np.float32),
                                  threads)
    grads64 = backward_on_threads(model64, model64.forward(x64)[2], dy, threads)
    for name, g64 in grads64.params.items():
        scale = np.abs(g64).max()
        np.testing.assert_allclose(grads32.params[name], g64, rtol=0, atol=1e-4 * scale,
                                   err_msg=name)


CHUNKED = [
    # (cell, T, B): lengths in [T/4, T] make steps of every size from B down,
    # so the weight gradients' chunks of whole steps (at most 512 rows) end
    # at uneven rows, in both directions
    ("LSTM", 60, 23),
    ("GRU", 60, 23),
    # steps of more rows than a chunk holds: each step a chunk of its own
    ("RNN_RELU", 3, 600),
]


@pytest.mark.parametrize("cell,steps,batch", CHUNKED)
@pytest.mark.parametrize("threads", [1, 2])
def test_gradients_over_chunks_of_ragged_steps(cell, steps, batch, threads):
    """With ragged lengths and both directions over more rows than one
    chunk of the weight gradients, every parameter's gradient and the
    input's agree with central differences along a random direction."""
    model = make_model(cell, 3, 4, bidirectional=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    x = 0.5 * rng.standard_normal((steps, batch, 3))
    lengths = rng.integers(max(1, steps // 4), steps + 1, size=batch)
    y, _, tape = model.forward(x, lengths=lengths)
    assert lengths.sum() > 512
    dy = rng.standard_normal(y.shape)
    grads = backward_on_threads(model, tape, dy, threads)

    def along(value, gradient, set_value):
        direction = rng.standard_normal(value.shape)
        saved = value.copy()
        losses = []
        for sign in (1, -1):
            set_value(saved + sign * 1e-6 * direction)
            losses.append(np.sum(model(x_now[0], lengths=lengths)[0] * dy))
        set_value(saved)
        numeric = (losses[0] - losses[1]) / 2e-6
        analytic = np.sum(gradient * direction)
        return numeric, analytic

    x_now = [x]
    params = model.parameters()
    for name in params:
        def set_param(v, name=name):
            params[name][...] = v
        numeric, analytic = along(params[name], grads.params[name], set_param)
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), name

    def set_x(v):
        x_now[0] = v
    numeric, analytic = along(x, grads.input, set_x)
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), "input"
