"""The open Sequential: ids into an Embedding, Dropout, a layer of the
user's own, tied weights (one parameter, the sum of two gradients, saved
once), and the optimizers' refusal of state_dict() copies."""
import numpy as np
import pytest

import cyrnn
from helpers import finite_difference

V, E, H, T, B = 9, 3, 4, 5, 2


class Tanh:
    """The layer protocol's example, as the module docstring gives it."""

    def __call__(self, x):
        return np.tanh(x)

    def forward(self, x):
        y = np.tanh(x)
        return y, y

    def backward(self, y, dy):
        return cyrnn.Gradients(dy * (1 - y * y), None, {})

    def parameters(self):
        return {}

    state_dict = parameters

    def load_state_dict(self, state_dict, strict=True):
        pass


class Scale:
    """A user layer with a parameter: y = x * s, s of shape (features,)."""

    def __init__(self, features):
        self.s = np.linspace(0.5, 1.5, features)

    def __call__(self, x):
        return x * self.s

    def forward(self, x):
        return x * self.s, x.copy()

    def backward(self, x, dy):
        return cyrnn.Gradients(dy * self.s, None, {"s": (dy * x).reshape(-1, x.shape[-1]).sum(0)})

    def parameters(self):
        return {"s": self.s}

    def state_dict(self):
        return {"s": self.s.copy()}

    def load_state_dict(self, state_dict, strict=True):
        self.s[...] = state_dict["s"]


def language_model(tied=False, p=0.3):
    """Embedding -> LSTM -> Dropout -> Tanh -> Linear decoder, float64."""
    emb = cyrnn.Embedding(V, E, dtype=np.float64, seed=0)
    decoder = cyrnn.Linear(E if tied else H, V, dtype=np.float64, seed=3)
    layers = [emb, cyrnn.LSTM(E, H, dtype=np.float64, seed=1), cyrnn.Dropout(p, seed=2), Tanh()]
    if tied:
        layers.append(cyrnn.Linear(H, E, dtype=np.float64, seed=4))
        decoder.tie("weight", emb)
    return cyrnn.Sequential(*layers, decoder)


def same_masks(model):
    """Every Dropout of the model draws the same masks again."""
    for layer in model:
        if isinstance(layer, cyrnn.Dropout):
            layer._rng = np.random.default_rng(11)


def loss_with_fixed_masks(model, ids, dout):
    """sum(out * dout) with every Dropout drawing the same masks each call."""
    def f():
        same_masks(model)
        out, _, _ = model.forward(ids)
        return np.sum(out * dout)
    return f


@pytest.mark.parametrize("tied", [False, True])
def test_gradients_match_finite_differences(tied):
    rng = np.random.default_rng(0)
    model = language_model(tied)
    ids = rng.integers(0, V, (T, B))
    dout = rng.standard_normal((T, B, V))
    f = loss_with_fixed_masks(model, ids, dout)
    same_masks(model)
    out, states, tape = model.forward(ids)
    g = model.backward(tape, dout)
    assert g.input is None
    params = model.parameters()
    assert set(g.params) == set(params)
    for name, value in params.items():
        expected = finite_difference(f, value)
        np.testing.assert_allclose(np.asarray(g.params[name]), expected, atol=1e-7,
                                   err_msg=name)


def test_tied_weight_is_one_parameter_with_the_summed_gradient():
    rng = np.random.default_rng(1)
    model = language_model(tied=True, p=0.0)
    assert model.tied() == {"5.weight": "0.weight"}
    assert "5.weight" not in model.parameters() and "5.weight" not in model.state_dict()
    assert model[5].parameters()["weight"] is model[0].parameters()["weight"]
    ids = rng.integers(0, V, (T, B))
    dout = rng.standard_normal((T, B, V))
    out, _, tape = model.forward(ids)
    g = model.backward(tape, dout)
    # the same model untied: two arrays with the same values
    untied = cyrnn.Sequential(*model.layers[:5], cyrnn.Linear(E, V, dtype=np.float64))
    untied.load_state_dict({**model.state_dict(), "5.weight": model.state_dict()["0.weight"]})
    np.testing.assert_allclose(untied(ids)[0], out)
    tape_u = untied.forward(ids)[2]
    gu = untied.backward(tape_u, dout)
    np.testing.assert_allclose(np.asarray(g.params["0.weight"]),
                               np.asarray(gu.params["0.weight"]) + gu.params["5.weight"],
                               rtol=1e-12)


def test_optimizer_step_trains_both_layers_of_a_tie():
    model = language_model(tied=True, p=0.0)
    ids = np.arange(T * B).reshape(T, B) % V
    opt = cyrnn.optim.SGD(model.parameters(), lr=0.1)
    before = model.state_dict()["0.weight"]
    out, _, tape = model.forward(ids)
    opt.step(model.backward(tape, np.ones_like(out)).params)
    assert not np.array_equal(before, model[0].parameters()["weight"])
    assert model[5].parameters()["weight"] is model[0].parameters()["weight"]


def test_tied_state_dict_loads_under_either_name():
    model = language_model(tied=True)
    state = model.state_dict()
    other = language_model(tied=True)
    other.load_state_dict({**state, "5.weight": state["0.weight"]})  # as torch's has both
    np.testing.assert_array_equal(other[5].parameters()["weight"], state["0.weight"])
    alias_only = {k: v for k, v in state.items() if k != "0.weight"}
    alias_only["5.weight"] = state["0.weight"] + 1
    other.load_state_dict(alias_only)
    np.testing.assert_array_equal(other[0].parameters()["weight"], state["0.weight"] + 1)
    with pytest.raises(ValueError, match="one tied parameter"):
        other.load_state_dict({**state, "5.weight": state["0.weight"] + 1})


@pytest.mark.parametrize("make, error, words", [
    (lambda e, d: d.tie("bias", e), ValueError, ["source_name", "weight"]),
    (lambda e, d: d.tie("weights", e), ValueError, ["name", "weight", "bias"]),
    (lambda e, d: d.tie("weight", "emb"), TypeError, ["source"]),
    (lambda e, d: cyrnn.Linear(3, 4).tie("weight", e), ValueError, ["shapes"]),
    (lambda e, d: d.tie("weight", cyrnn.Embedding(V, E, dtype=np.float64)), ValueError,
     ["dtypes"]),
])
def test_bad_ties_are_named(make, error, words):
    emb, decoder = cyrnn.Embedding(V, E), cyrnn.Linear(E, V)
    with pytest.raises(error) as info:
        make(emb, decoder)
    for word in words:
        assert word in str(info.value)


def test_a_recurrent_layer_can_tie_too():
    a, b = cyrnn.GRU(3, 3, seed=0), cyrnn.GRU(3, 3, seed=1)
    b.tie("weight_hh_l0", a)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    expected = cyrnn.GRU(3, 3)
    expected.load_state_dict({**b.state_dict(), "weight_hh_l0": a.state_dict()["weight_hh_l0"]})
    np.testing.assert_array_equal(b(x)[0], expected(x)[0])
    a.parameters()["weight_hh_l0"][...] = 0  # one array: b sees it
    expected.load_state_dict({**expected.state_dict(), "weight_hh_l0": np.zeros((9, 3))})
    np.testing.assert_array_equal(b(x)[0], expected(x)[0])


def test_a_user_layer_with_parameters_trains_in_a_sequential():
    rng = np.random.default_rng(2)
    model = cyrnn.Sequential(cyrnn.GRU(2, 3, dtype=np.float64, seed=0), Scale(3),
                             cyrnn.Linear(3, 1, dtype=np.float64, seed=1))
    x, dout = rng.standard_normal((T, B, 2)), rng.standard_normal((T, B, 1))
    out, _, tape = model.forward(x)
    g = model.backward(tape, dout)
    f = lambda: np.sum(model(x)[0] * dout)  # noqa: E731
    np.testing.assert_allclose(g.params["1.s"], finite_difference(f, model[1].s), atol=1e-8)
    np.testing.assert_allclose(g.input, finite_difference(f, x), atol=1e-8)
    assert model.input_size == 2 and model.output_size == 1 and model.num_states == 1


def test_a_layer_without_input_gradient_must_come_first():
    class PassIds(Tanh):
        def __call__(self, x):
            return x

        def forward(self, x):
            return x, None

    model = cyrnn.Sequential(PassIds(), cyrnn.Embedding(V, 2))
    out, _, tape = model.forward(np.arange(3))
    with pytest.raises(ValueError, match=r"layers\[1\] \(Embedding.*gives no gradient of its input"):
        model.backward(tape, np.ones_like(out))


def test_layers_without_the_protocol_are_refused():
    with pytest.raises(TypeError, match=r"layers\[1\].*object has no \['__call__', 'forward'"):
        cyrnn.Sequential(cyrnn.Linear(2, 2), object())


def test_sequential_in_a_sequential():
    inner = cyrnn.Sequential(cyrnn.LSTM(2, 3, seed=0), cyrnn.Linear(3, 3, seed=1))
    outer = cyrnn.Sequential(inner, cyrnn.GRU(3, 2, seed=2))
    x = np.random.default_rng(0).standard_normal((T, B, 2)).astype(np.float32)
    out, states = outer(x)
    assert len(states) == 2 and isinstance(states[0], list)
    y, s = inner(x)
    np.testing.assert_array_equal(out, outer[1](y)[0])
    out, states, tape = outer.forward(x)
    g = outer.backward(tape, np.ones_like(out))
    assert g.input.shape == x.shape and "0.0.weight_ih_l0" in g.params


def test_optimizers_refuse_state_dict_copies():
    model = cyrnn.LSTM(2, 3)
    with pytest.raises(ValueError, match=r"params\['weight_ih_l0'\] is a copy from state_dict"):
        cyrnn.optim.Adam(model.state_dict())
    seq = cyrnn.Sequential(model, cyrnn.Linear(3, 1))
    with pytest.raises(ValueError, match="copy from state_dict"):
        cyrnn.optim.SGD(seq.state_dict(), lr=0.1)
    cyrnn.optim.SGD({"w": np.zeros(3)}, lr=0.1)  # the user's own arrays are fine
