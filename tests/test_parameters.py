"""Parameters: torch's names, shapes, order and initialisation; copies out,
copies in."""
import numpy as np
import pytest

import cyrnn
from helpers import make_model


def expected_names(num_layers, bidirectional, bias, proj):
    names = []
    for layer in range(num_layers):
        for sfx in ([""] + (["_reverse"] if bidirectional else [])):
            names += [f"weight_ih_l{layer}{sfx}", f"weight_hh_l{layer}{sfx}"]
            if bias:
                names += [f"bias_ih_l{layer}{sfx}", f"bias_hh_l{layer}{sfx}"]
            if proj:
                names.append(f"weight_hr_l{layer}{sfx}")
    return names


@pytest.mark.parametrize("cell,gates", [("LSTM", 4), ("GRU", 3), ("RNN_TANH", 1)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_names_shapes_and_order_are_torchs(cell, gates, bidirectional, bias):
    I, H, L = 5, 7, 3
    proj = 3 if cell == "LSTM" else 0
    options = dict(num_layers=L, bidirectional=bidirectional, bias=bias)
    if proj:
        options["proj_size"] = proj
    sd = make_model(cell, I, H, **options).state_dict()
    assert list(sd) == expected_names(L, bidirectional, bias, proj)
    D, Hout = (2 if bidirectional else 1), (proj or H)
    for name, value in sd.items():
        layer = int(name.split("_l")[1][0])
        in_size = I if layer == 0 else D * Hout
        want = {"weight_ih": (gates * H, in_size), "weight_hh": (gates * H, Hout),
                "bias_ih": (gates * H,), "bias_hh": (gates * H,),
                "weight_hr": (Hout, H)}[name.split("_l")[0]]
        assert value.shape == want, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initialisation_is_torchs_uniform_and_seeded(dtype):
    H = 64
    model = cyrnn.LSTM(16, H, num_layers=2, dtype=dtype, seed=7)
    values = np.concatenate([v.ravel() for v in model.state_dict().values()])
    bound = 1 / np.sqrt(H)
    assert values.dtype == dtype
    assert np.all(np.abs(values) <= bound)
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.mean()) < 0.01 * bound * 10  # centred
    assert abs(values.std() - bound / np.sqrt(3)) < 0.02 * bound  # uniform's spread
    again = cyrnn.LSTM(16, H, num_layers=2, dtype=dtype, seed=7).state_dict()
    other = cyrnn.LSTM(16, H, num_layers=2, dtype=dtype, seed=8).state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(again[key], value)
        assert not np.array_equal(other[key], value)


def test_state_dict_returns_copies():
    model = cyrnn.GRU(3, 4, seed=0)
    x = np.ones((2, 1, 3))
    y, _ = model(x)
    sd = model.state_dict()
    for value in sd.values():
        value[...] = 100
    np.testing.assert_array_equal(model(x)[0], y)


def test_parameters_are_live_and_load_converts_dtype():
    model = cyrnn.RNN(3, 4, dtype=np.float32, seed=0)
    params = model.parameters()
    x = np.ones((2, 1, 3))
    y, _ = model(x)
    params["bias_ih_l0"] += 1.0
    assert not np.array_equal(model(x)[0], y)
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    assert all(v.dtype == np.float32 for v in model.state_dict().values())
    # load_state_dict writes into the same arrays that parameters() handed out
    model.load_state_dict({k: np.zeros_like(v) for k, v in model.state_dict().items()})
    assert not params["weight_ih_l0"].any()


def test_load_accepts_array_likes_and_other_dtypes():
    source = cyrnn.LSTM(2, 3, bidirectional=True, dtype=np.float64, seed=1)
    target = cyrnn.LSTM(2, 3, bidirectional=True, dtype=np.float32, seed=2)
    target.load_state_dict({k: v.tolist() for k, v in source.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    np.testing.assert_allclose(target(x)[0], source(x)[0], rtol=1e-5, atol=1e-6)


def test_repr_and_read_only_configuration():
    model = cyrnn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True,
                      dtype=np.float64)
    assert repr(model) == ("RNN(3, 4, num_layers=2, bidirectional=True, "
                           "nonlinearity='relu', dtype=float64)")
    with pytest.raises(AttributeError):
        model.hidden_size = 5
