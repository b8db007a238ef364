"""A lone reverse direction (reverse=True; ONNX's direction="reverse",
Keras's go_backwards): it equals the forward layer run over each sequence
reversed within its length, with the outputs reversed back, forward and
BPTT, for every cell and option; finite differences; errors; save/load."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cyrnn
from cyrnn.layers import CELL_KEYS, make_layer
from helpers import finite_difference, random_like_states, weighted_loss


def flip(x, lengths, batch_first=False):
    """Each sequence of x reversed within its length (zeros past it)."""
    x = np.swapaxes(x, 0, 1) if batch_first else x
    out = np.zeros_like(x)
    for b, n in enumerate(lengths):
        out[:n, b] = x[:n, b][::-1]
    return np.swapaxes(out, 0, 1) if batch_first else out


def pair(key, **options):
    """The same weights as a forward layer and as a reversed one."""
    forward = make_layer(key, 3, 5, seed=1, **options)
    reverse = make_layer(key, 3, 5, reverse=True, **options)
    reverse.load_state_dict(forward.state_dict())
    return forward, reverse


def first(state):
    return state[0] if isinstance(state, tuple) else state


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(CELL_KEYS), layers=st.integers(1, 2), T=st.integers(1, 6),
       B=st.integers(1, 5), batch_first=st.booleans(), ragged=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_reverse_is_the_forward_layer_over_reversed_sequences(key, layers, T, B, batch_first,
                                                              ragged, dtype, seed):
    rng = np.random.default_rng(seed)
    forward, reverse = pair(key, num_layers=layers, batch_first=batch_first, dtype=dtype)
    lengths = rng.integers(1, T + 1, B) if ragged else np.full(B, T)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(dtype)
    x = flip(flip(x, lengths, batch_first), lengths, batch_first)  # zeros past the lengths
    call = dict(lengths=lengths if ragged else None)
    y_f, h_f = forward(flip(x, lengths, batch_first), **call)
    y_r, h_r = reverse(x, **call)
    np.testing.assert_array_equal(flip(y_f, lengths, batch_first), y_r)
    np.testing.assert_array_equal(first(h_f), first(h_r))
    y_f, _, tape_f = forward.forward(flip(x, lengths, batch_first), **call)
    y_r, _, tape_r = reverse.forward(x, **call)
    dy = rng.standard_normal(y_r.shape).astype(dtype)
    g_f = forward.backward(tape_f, flip(dy, lengths, batch_first))
    g_r = reverse.backward(tape_r, dy)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(flip(g_f.input, lengths, batch_first), g_r.input, rtol=rtol,
                               atol=rtol)
    for name, value in g_f.params.items():
        np.testing.assert_allclose(value, g_r.params[name], rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("key", CELL_KEYS)
def test_reverse_gradients_match_finite_differences(key):
    rng = np.random.default_rng(0)
    options = {"proj_size": 2} if key.startswith("LSTM") else {}
    model = make_layer(key, 3, 4, num_layers=2, reverse=True, dtype=np.float64, seed=0,
                       **options)
    x = rng.standard_normal((5, 3, 3))
    lengths = np.array([5, 2, 4])
    _, hn0 = model(x, lengths=lengths)
    hx = random_like_states(rng, hn0)
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    dy, dhn = rng.standard_normal(y.shape), random_like_states(rng, hn)
    g = model.backward(tape, dy, dhn)
    f = lambda: weighted_loss(*model(x, hx, lengths=lengths), dy, dhn)  # noqa: E731
    np.testing.assert_allclose(g.input, finite_difference(f, x), atol=1e-7)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(g.params[name], finite_difference(f, value), atol=1e-7,
                                   err_msg=name)
    for got, state in zip(g.hx if isinstance(g.hx, tuple) else (g.hx,),
                          hx if isinstance(hx, tuple) else (hx,)):
        np.testing.assert_allclose(got, finite_difference(f, state), atol=1e-7)


def test_reverse_with_threads_gives_one_thread_s_bits():
    model = cyrnn.GRU(16, 64, 2, reverse=True, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 24, 16)).astype(np.float32)
    before = cyrnn.get_num_threads()
    try:
        cyrnn.set_num_threads(1)
        one = model(x)[0]
        cyrnn.set_num_threads(2)
        np.testing.assert_array_equal(model(x)[0], one)
    finally:
        cyrnn.set_num_threads(before)


def test_reverse_options_errors_and_files(tmp_path):
    with pytest.raises(ValueError, match="reverse=True.*bidirectional"):
        cyrnn.LSTM(3, 4, bidirectional=True, reverse=True)
    with pytest.raises(TypeError, match="reverse"):
        cyrnn.GRU(3, 4, reverse="yes")
    model = cyrnn.RNN(3, 4, nonlinearity="relu", reverse=True, seed=0)
    assert model.reverse and "reverse=True" in repr(model)
    assert list(model.state_dict()) == list(cyrnn.RNN(3, 4).state_dict())
    cyrnn.save(tmp_path / "m.npz", model)
    loaded = cyrnn.load(tmp_path / "m.npz")
    x = np.ones((4, 2, 3), np.float32)
    assert loaded.reverse
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
