"""Truncated BPTT: states carried across chunks keep their values (chunked
inference equals one long pass), the gradient stops at the chunk start, and
chunked training runs and learns."""
import numpy as np
import pytest

import cyrnn
from cyrnn import losses, optim


def model64(seed=0):
    return cyrnn.Sequential(cyrnn.LSTM(2, 6, seed=seed, dtype=np.float64),
                            cyrnn.GRU(6, 5, num_layers=2, seed=seed + 1, dtype=np.float64),
                            cyrnn.Linear(5, 1, seed=seed + 2, dtype=np.float64))


def test_carried_state_gives_the_outputs_of_one_long_pass():
    model = model64()
    x = np.random.default_rng(0).standard_normal((40, 3, 2))
    long_out, long_states = model(x)
    states, pieces = None, []
    for start in range(0, 40, 10):
        out, states = model(x[start:start + 10], states)
        pieces.append(out)
        states = cyrnn.detach_states(states)
    np.testing.assert_allclose(np.concatenate(pieces), long_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(states[0][0], long_states[0][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(states[1], long_states[1], rtol=1e-12, atol=1e-12)
    # the training forward carries state the same way
    _, first_states, _ = model.forward(x[:20])
    out2, _, _ = model.forward(x[20:], cyrnn.detach_states(first_states))
    np.testing.assert_allclose(out2, long_out[20:], rtol=1e-12, atol=1e-12)
    # and without the carried state chunk 2 differs: the state matters
    fresh, _ = model(x[20:])
    assert not np.allclose(fresh, long_out[20:])


def test_gradient_stops_at_the_chunk_start():
    """The parameter gradient of chunk 2's loss, with the carried state
    held fixed, is that of one long pass in which chunk 1's loss is zero and
    the gradient is not sent back into chunk 1 — that is, it equals
    backward on chunk 2 alone from the detached state."""
    model = model64()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 2, 2))
    target = rng.standard_normal((30, 2, 1))
    _, states = model(x[:15])
    out, _, tape = model.forward(x[15:], cyrnn.detach_states(states))
    _, dout = losses.mse(out, target[15:])
    g_chunk = model.backward(tape, dout)
    # finite differences of chunk 2's loss w.r.t. one weight, state held fixed
    weight = model.parameters()["1.weight_hh_l1"]
    fixed = cyrnn.detach_states(states)
    index = (2, 3)
    saved = weight[index]
    values = []
    for delta in (1e-6, -1e-6):
        weight[index] = saved + delta
        values.append(float(losses.mse(model(x[15:], fixed)[0], target[15:])[0]))
    weight[index] = saved
    fd = (values[0] - values[1]) / 2e-6
    np.testing.assert_allclose(g_chunk.params["1.weight_hh_l1"][index], fd, rtol=1e-6)
    assert g_chunk.hx[0][0].shape == states[0][0].shape      # dL/dhx is there, unused


def test_chunked_training_runs_and_learns():
    """A sine continued across chunks of 25 steps, trained with the carried
    state: the mean chunk loss falls well below its start."""
    t = np.arange(2000)
    series = np.sin(2 * np.pi * t / 23)
    x_all, y_all = series[:-1, None, None], series[1:, None, None]
    model = cyrnn.Sequential(cyrnn.GRU(1, 16, dtype=np.float64, seed=0),
                             cyrnn.Linear(16, 1, dtype=np.float64, seed=1))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    epoch_losses = []
    for _ in range(3):
        states, total, count = None, 0.0, 0
        for start in range(0, len(x_all) - 25 + 1, 25):
            out, states, tape = model.forward(x_all[start:start + 25], states)
            loss, dout = losses.mse(out, y_all[start:start + 25])
            grads = model.backward(tape, dout).params
            optim.clip_grad_norm(grads, 1.0)
            opt.step(grads)
            states = cyrnn.detach_states(states)
            total, count = total + float(loss), count + 1
        epoch_losses.append(total / count)
    assert epoch_losses[-1] < 0.1 * epoch_losses[0], epoch_losses
    assert epoch_losses[-1] < 0.01


def test_detach_states_copies_every_structure():
    h = np.ones((1, 2, 3))
    c = np.zeros((1, 2, 3))
    for states in (h, (h, c), [h, (h, c), None], None):
        copied = cyrnn.detach_states(states)
        if states is None:
            assert copied is None
            continue
        flat = lambda s: ([s] if isinstance(s, np.ndarray) else
                          [a for item in s for a in flat(item)] if s is not None else [])
        for a, b in zip(flat(states), flat(copied)):
            np.testing.assert_array_equal(a, b)
            assert not np.shares_memory(a, b)
    assert isinstance(cyrnn.detach_states((h, c)), tuple)
    assert isinstance(cyrnn.detach_states([h]), list)


def test_detach_states_rejects_what_is_not_a_state():
    with pytest.raises(TypeError, match="states must be"):
        cyrnn.detach_states("h")
    with pytest.raises(TypeError, match=r"states\[0\]"):
        cyrnn.detach_states([{"h": 1}])
    with pytest.raises(TypeError, match="floating-point"):
        cyrnn.detach_states(np.ones(3, dtype=int))
    with pytest.raises(TypeError, match="states"):
        cyrnn.detach_states([[[np.ones(2)]]])
