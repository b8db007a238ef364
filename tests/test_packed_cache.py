"""Inference reuses the packed weights of its last call while the weights are
the same bytes: any change, in place or through load_state_dict, must show in
the very next result."""
import numpy as np
import pytest

from helpers import make_model

CELLS = ["LSTM", "GRU", "RNN_RELU", "LSTM_PROJ"]


def options(cell):
    extra = {"proj_size": 2} if cell == "LSTM_PROJ" else {}
    return ("LSTM" if cell == "LSTM_PROJ" else cell), extra


def rebuilt(model, cell):
    """A fresh model with the same weights: it has never packed anything."""
    name, extra = options(cell)
    fresh = make_model(name, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                       seed=99, **extra)
    fresh.load_state_dict(model.state_dict())
    return fresh


@pytest.mark.parametrize("cell", CELLS)
def test_repeated_inference_gives_the_same_result(cell):
    name, extra = options(cell)
    model = make_model(name, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                       seed=1, **extra)
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    first, _ = model(x)
    again, _ = model(x)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, rebuilt(model, cell)(x)[0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("target", ["weight_ih_l1_reverse", "weight_hh_l0", "bias_ih_l0",
                                    "bias_hh_l1", "weight_hh_l1_reverse"])
def test_a_weight_changed_in_place_is_seen_by_the_next_call(cell, target):
    name, extra = options(cell)
    model = make_model(name, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                       seed=2, **extra)
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    before, _ = model(x)
    model.parameters()[target][...] += 0.25  # in place, as an optimizer steps
    after, _ = model(x)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, rebuilt(model, cell)(x)[0])


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_is_seen_by_the_next_call(cell):
    name, extra = options(cell)
    model = make_model(name, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                       seed=3, **extra)
    other = make_model(name, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64,
                       seed=4, **extra)
    x = np.random.default_rng(3).standard_normal((6, 2, 3))
    model(x)
    model.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(model(x)[0], other(x)[0])


def test_training_between_inference_calls_is_seen():
    model = make_model("LSTM", 3, 5, dtype=np.float64, seed=5)
    x = np.random.default_rng(5).standard_normal((6, 2, 3))
    before, _ = model(x)
    y, _, tape = model.forward(x)
    grads = model.backward(tape, np.ones_like(y))
    for name, value in model.parameters().items():
        value -= 0.1 * grads.params[name]
    after, _ = model(x)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, model.forward(x)[0])


def test_a_peephole_weight_changed_in_place_is_seen_by_the_next_call():
    """The peephole weights are packed with the biases: the cache must
    compare them too."""
    model = make_model("LSTM_PEEPHOLE", 3, 5, bidirectional=True, dtype=np.float64, seed=5)
    x = np.random.default_rng(5).standard_normal((6, 2, 3))
    before, _ = model(x)
    model.parameters()["weight_peephole_l0_reverse"][...] += 0.25
    after, _ = model(x)
    assert not np.array_equal(before, after)
    fresh = make_model("LSTM_PEEPHOLE", 3, 5, bidirectional=True, dtype=np.float64, seed=6)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(after, fresh(x)[0])
