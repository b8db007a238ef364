"""cyrnn against outputs and gradients computed by torch 2.13.0 (written by
tools/make_fixtures.py; torch is not needed to run these tests)."""
import json
import pathlib

import numpy as np
import pytest

from helpers import make_model, tolerances

DATA = pathlib.Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("*.npz"))
CELL_OF = {("LSTM", None): "LSTM", ("GRU", None): "GRU",
           ("RNN", "tanh"): "RNN_TANH", ("RNN", "relu"): "RNN_RELU"}


def test_fixture_set_is_complete():
    cells = {path.name.split("_")[0] for path in FIXTURES}
    assert len(FIXTURES) >= 150 and cells == {"lstm", "gru", "rnn"}


def load_case(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("config")))
    options = {k: config[k] for k in ("num_layers", "bias", "batch_first", "bidirectional",
                                      "proj_size") if k in config}
    model = make_model(CELL_OF[config["cell"], config.get("nonlinearity")],
                       input_size=config["input_size"], hidden_size=config["hidden_size"],
                       dtype=config["dtype"], **options)
    model.load_state_dict({k[len("param."):]: v for k, v in arrays.items()
                           if k.startswith("param.")})
    is_lstm = config["cell"] == "LSTM"
    if config["no_hx"]:
        hx = None
    else:
        hx = (arrays["h0"], arrays["c0"]) if is_lstm else arrays["h0"]
    return model, arrays, hx, is_lstm


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_matches_torch(path):
    model, ref, hx, is_lstm = load_case(path)
    tol = tolerances(model.dtype)
    lengths = ref.get("lengths")

    y, hn = model(ref["x"], hx, lengths=lengths)
    y_train, hn_train, tape = model.forward(ref["x"], hx, lengths=lengths)
    np.testing.assert_allclose(y, ref["y"], **tol)
    np.testing.assert_array_equal(y_train, y)
    h_n = hn[0] if is_lstm else hn
    np.testing.assert_allclose(h_n, ref["h_n"], **tol)
    if is_lstm:
        np.testing.assert_allclose(hn[1], ref["c_n"], **tol)

    dhn = (ref["dh_n"], ref["dc_n"]) if is_lstm else ref["dh_n"]
    grads = model.backward(tape, ref["dy"], dhn)
    np.testing.assert_allclose(grads.input, ref["grad.input"], **tol)
    if hx is not None:
        dh0 = grads.hx[0] if is_lstm else grads.hx
        np.testing.assert_allclose(dh0, ref["grad.h0"], **tol)
        if is_lstm:
            np.testing.assert_allclose(grads.hx[1], ref["grad.c0"], **tol)
    expected = {k[len("grad."):]: v for k, v in ref.items()
                if k.startswith("grad.") and k not in ("grad.input", "grad.h0", "grad.c0")}
    assert grads.params.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(grads.params[name], value, err_msg=name, **tol)
