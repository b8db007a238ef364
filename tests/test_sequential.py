"""cyrnn.Sequential: forward and backward against finite differences and
against chaining the layers by hand, parameter names, state_dict, errors."""
import functools

import numpy as np
import pytest

import cyrnn
from helpers import assert_input_grad_only_leaves_out_dx, finite_difference

T, B = 4, 2


def small_model(dtype=np.float64, batch_first=False, proj_size=0):
    """LSTM -> bidirectional GRU -> Linear head, float64 by default."""
    return cyrnn.Sequential(
        cyrnn.LSTM(3, 4, proj_size=proj_size, dtype=dtype, seed=0, batch_first=batch_first),
        cyrnn.GRU(proj_size or 4, 3, bidirectional=True, dtype=dtype, seed=1,
                  batch_first=batch_first),
        cyrnn.Linear(6, 2, dtype=dtype, seed=2),
    )


def random_states(rng, states):
    return [tuple(rng.standard_normal(a.shape) for a in s) if isinstance(s, tuple)
            else rng.standard_normal(s.shape) for s in states]


def weighted(out, states, dout, dstates):
    total = np.sum(out * dout)
    for s, d in zip(states, dstates):
        pairs = zip(s, d) if isinstance(s, tuple) else [(s, d)]
        total += sum(np.sum(a * b) for a, b in pairs)
    return total


@pytest.mark.parametrize("case", ["plain", "lengths", "batch_first", "unbatched", "proj"])
def test_backward_matches_finite_differences(case):
    rng = np.random.default_rng(0)
    options = {"proj": {"proj_size": 2}}.get(case, {})
    model = small_model(batch_first=case == "batch_first", **options)
    shape = {"batch_first": (B, T, 3), "unbatched": (T, 3)}.get(case, (T, B, 3))
    x = rng.standard_normal(shape)
    lengths = np.array([4, 2]) if case == "lengths" else None
    out0, states0 = model(x, lengths=lengths)
    hx = random_states(rng, states0)
    dout = rng.standard_normal(out0.shape)
    if lengths is not None:                  # padded outputs of the head are its bias
        dout[lengths[1]:, 1] = 0
    dstates = random_states(rng, states0)

    def loss():
        out, states = model(x, hx, lengths=lengths)
        return weighted(out, states, dout, dstates)

    out, states, tape = model.forward(x, hx, lengths=lengths)
    g = model.backward(tape, dout, dstates)
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.input, finite_difference(loss, x), **tol)
    np.testing.assert_allclose(g.hx[0][0], finite_difference(loss, hx[0][0]), **tol)
    np.testing.assert_allclose(g.hx[0][1], finite_difference(loss, hx[0][1]), **tol)
    np.testing.assert_allclose(g.hx[1], finite_difference(loss, hx[1]), **tol)
    params = model.parameters()
    assert list(g.params) == list(params)
    for name, value in params.items():
        np.testing.assert_allclose(g.params[name], finite_difference(loss, value), **tol,
                                   err_msg=name)


def test_matches_chaining_the_layers_by_hand():
    rng = np.random.default_rng(1)
    lstm = cyrnn.LSTM(3, 5, num_layers=2, seed=0)
    rnn = cyrnn.RNN(5, 4, nonlinearity="relu", seed=1)
    head = cyrnn.Linear(4, 3, seed=2)
    model = cyrnn.Sequential(lstm, rnn, head)
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    hx = [None, rng.standard_normal((1, 3, 4))]
    lengths = np.array([6, 3, 5])

    y1, s1, t1 = lstm.forward(x, lengths=lengths)
    y2, s2, t2 = rnn.forward(y1, hx[1], lengths=lengths)
    y3, t3 = head.forward(y2)
    out, states, tape = model.forward(x, hx, lengths=lengths)
    np.testing.assert_array_equal(out, y3)
    np.testing.assert_array_equal(states[0][0], s1[0])
    np.testing.assert_array_equal(states[0][1], s1[1])
    np.testing.assert_array_equal(states[1], s2)
    inference, inference_states = model(x, hx, lengths=lengths)
    np.testing.assert_allclose(inference, out, rtol=1e-6, atol=1e-6)

    dout = rng.standard_normal(out.shape).astype(np.float32)
    dh = rng.standard_normal(s2.shape).astype(np.float32)
    g3 = head.backward(t3, dout)
    g2 = rnn.backward(t2, g3.input, dh)
    g1 = lstm.backward(t1, g2.input)
    g = model.backward(tape, dout, [None, dh])
    np.testing.assert_array_equal(g.input, g1.input)
    np.testing.assert_array_equal(g.hx[1], g2.hx)
    for prefix, part in (("0.", g1), ("1.", g2), ("2.", g3)):
        for name, value in part.params.items():
            np.testing.assert_array_equal(g.params[prefix + name], value)


def test_parameters_are_live_and_named_like_torch_sequential():
    model = cyrnn.Sequential(cyrnn.LSTM(3, 4, proj_size=2, seed=0), cyrnn.Linear(2, 5, seed=1))
    params = model.parameters()
    assert list(params) == ["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0",
                            "0.bias_hh_l0", "0.weight_hr_l0", "1.weight", "1.bias"]
    assert params["0.weight_ih_l0"] is model.layers[0].parameters()["weight_ih_l0"]
    assert params["1.weight"] is model[1].parameters()["weight"]
    x = np.ones((2, 1, 3), np.float32)
    before = model(x)[0]
    params["1.bias"][:] += 1.0                                   # an in-place update is seen
    np.testing.assert_allclose(model(x)[0], before + 1.0, rtol=1e-6)
    state = model.state_dict()
    assert list(state) == list(params)
    for name in state:                                           # copies, not the live arrays
        assert not np.shares_memory(state[name], params[name])


def test_load_state_dict_round_trip_and_errors():
    a = cyrnn.Sequential(cyrnn.GRU(3, 4, seed=0), cyrnn.Linear(4, 2, seed=1))
    b = cyrnn.Sequential(cyrnn.GRU(3, 4, seed=5), cyrnn.Linear(4, 2, seed=6))
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x)[0], b(x)[0])

    saved = b.state_dict()
    bad = a.state_dict()
    bad["1.weight"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"state_dict\['1.weight'\]"):
        b.load_state_dict(bad)
    bad = a.state_dict()
    del bad["0.bias_hh_l0"]
    with pytest.raises(ValueError, match="missing.*0.bias_hh_l0"):
        b.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected.*2.weight"):
        b.load_state_dict(dict(a.state_dict(), **{"2.weight": np.zeros(1)}))
    for name, value in b.state_dict().items():                     # nothing changed
        np.testing.assert_array_equal(value, saved[name])
    b.load_state_dict({"1.bias": np.array([1.0, 2.0])}, strict=False)
    np.testing.assert_array_equal(b.parameters()["1.bias"], [1, 2])
    with pytest.raises(TypeError, match="state_dict"):
        b.load_state_dict([1, 2])


def test_tape_checks():
    model = small_model()
    other = small_model()
    x = np.zeros((T, B, 3))
    out, _, tape = model.forward(x)
    with pytest.raises(ValueError, match="another model"):
        other.backward(tape, out)
    with pytest.raises(TypeError, match="SequentialTape"):
        model.backward("tape", out)
    with pytest.raises(ValueError, match=r"dout must have shape"):
        model.backward(tape, out[:-1])
    with pytest.raises(ValueError, match="dstates must have one entry per recurrent layer"):
        model.backward(tape, out, [None])
    model.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="stale"):
        model.backward(tape, out)


def test_construction_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        cyrnn.Sequential()
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        cyrnn.Sequential(cyrnn.LSTM(2, 3), "relu")
    with pytest.raises(ValueError, match=r"layers\[1\] takes 4 input features"):
        cyrnn.Sequential(cyrnn.LSTM(2, 3), cyrnn.Linear(4, 1))
    with pytest.raises(ValueError, match="dtype"):
        cyrnn.Sequential(cyrnn.LSTM(2, 3), cyrnn.Linear(3, 1, dtype=np.float64))
    with pytest.raises(ValueError, match="batch_first"):
        cyrnn.Sequential(cyrnn.LSTM(2, 3, batch_first=True), cyrnn.GRU(3, 3))
    gru = cyrnn.GRU(3, 3)
    with pytest.raises(ValueError, match="same object"):
        cyrnn.Sequential(gru, gru)
    # a list works too, and bidirectional / projected widths are understood
    model = cyrnn.Sequential([cyrnn.LSTM(2, 3, bidirectional=True, proj_size=2),
                              cyrnn.Linear(4, 1)])
    assert (model.input_size, model.output_size, model.num_states, len(model)) == (2, 1, 1, 2)
    assert "LSTM" in repr(model) and "Linear" in repr(model)


def test_hx_errors():
    model = small_model()
    x = np.zeros((T, B, 3))
    with pytest.raises(TypeError, match="hx must be None or a list"):
        model(x, np.zeros((1, B, 4)))
    with pytest.raises(ValueError, match="hx must have one entry per recurrent layer"):
        model(x, [None])
    with pytest.raises(ValueError, match=r"hx\[0\]"):
        model(x, [(np.zeros((1, B, 5)), None), None])


def test_linear_only_and_linear_between_recurrent_layers():
    head = cyrnn.Sequential(cyrnn.Linear(3, 2, seed=0))
    x = np.ones((4, 3), np.float32)
    out, states = head(x)
    assert out.shape == (4, 2) and states == []
    model = cyrnn.Sequential(cyrnn.Linear(3, 5, seed=0), cyrnn.GRU(5, 4, seed=1),
                             cyrnn.Linear(4, 1, seed=2))
    out, states, tape = model.forward(np.ones((6, 2, 3)))
    g = model.backward(tape, np.ones_like(out))
    assert g.input.shape == (6, 2, 3) and len(g.hx) == 1 and "0.weight" in g.params


class _Scale:
    """A layer of one's own, whose backward has no input_grad keyword."""
    def __call__(self, x): return 2.0 * x
    def forward(self, x): return 2.0 * x, None
    def backward(self, tape, dy): return cyrnn.Gradients(2.0 * dy, None, {})
    def parameters(self): return {}
    state_dict = parameters
    def load_state_dict(self, state_dict, strict=True): pass


@pytest.mark.parametrize("first", ["LSTM", "Linear", "own layer"])
def test_input_grad_false_spares_the_first_layer_its_input_gradient(first, monkeypatch):
    layer = {"LSTM": lambda: cyrnn.LSTM(3, 4, dtype=np.float64, seed=0),
             "Linear": lambda: cyrnn.Linear(3, 4, dtype=np.float64, seed=0),
             "own layer": _Scale}[first]()
    last = cyrnn.Linear(4 if first != "own layer" else 3, 2, dtype=np.float64, seed=1)
    model = cyrnn.Sequential(layer, last)
    x = np.random.default_rng(0).standard_normal((T, B, 3))
    out, _, tape = model.forward(x)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    full = model.backward(tape, dout)
    asked, backward = [], type(layer).backward

    @functools.wraps(backward)  # (the same signature)
    def recorded(self, *args, **keywords):
        if self is layer:  # (not the Linear head)
            asked.append(keywords)
        return backward(self, *args, **keywords)
    monkeypatch.setattr(type(layer), "backward", recorded)
    without_dx = model.backward(tape, dout, input_grad=False)
    assert full.input.shape == x.shape
    assert_input_grad_only_leaves_out_dx(full, without_dx)
    # the first layer was asked to leave dL/dx out where its backward can
    assert asked == [{} if first == "own layer" else {"input_grad": False}]
