"""The numpy reference's ONNX variants (LSTM_PEEPHOLE, GRU_RESET_BEFORE),
and cyrnn's layers of those cells, against outputs computed by onnxruntime 1.32.0 (written by
tools/make_onnx_fixtures.py; neither onnx nor onnxruntime is needed to run
these tests). The reference runs one layer and direction at a time, as in
test_reference.py, and the layers are chained here as torch chains them."""
import json
import pathlib

import numpy as np
import pytest

import cyrnn
from reference import Reference

DATA = pathlib.Path(__file__).parent / "data" / "onnx"
FIXTURES = sorted(DATA.glob("*.npz"))
# tools/make_onnx_fixtures.py's cells and CASES; float32 only, as onnxruntime's
# CPU LSTM and GRU refuse to run in float64
CELLS = ("lstm_peephole", "gru_reset_before")
CASES = ("base", "no_bias", "bidirectional", "lengths", "no_hx", "batch_first", "layers2",
         "lengths_bidirectional", "lengths_batch_first_bidirectional_layers2")
DTYPES = ("float32",)
TOLERANCES = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def test_fixture_set_is_complete():
    expected = {f"{cell}_{case}_{dtype}.npz" for cell in CELLS for case in CASES
                for dtype in DTYPES}
    assert {path.name for path in FIXTURES} == expected


def load_case(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


def reference_cell(config):
    """The Reference's name for the fixture's cell: its config says which
    ONNX variant it is, beside torch's cell name."""
    if config["cell"] == "LSTM" and config.get("peephole"):
        return "LSTM_PEEPHOLE"
    if config["cell"] == "GRU" and config.get("reset_after") is False:
        return "GRU_RESET_BEFORE"
    raise ValueError(f"not an ONNX-variant fixture: {config}")


def run_reference(config, arrays):
    """y, h_n, c_n (None without a cell state) in torch's layout, from the
    reference run layer by layer and direction by direction."""
    cell = reference_cell(config)
    params = {k[len("param."):]: v for k, v in arrays.items() if k.startswith("param.")}
    D = 2 if config["bidirectional"] else 1
    x = arrays["x"].swapaxes(0, 1) if config["batch_first"] else arrays["x"]  # time-major
    h0, c0 = arrays.get("h0"), arrays.get("c0")
    h_n, c_n = [], []
    for layer in range(config["num_layers"]):
        ys = []
        for d in range(D):
            k = layer * D + d  # torch's index of this layer and direction in h0, h_n
            ref = Reference(cell, params, suffix=f"_l{layer}" + ("_reverse" if d else ""),
                            lengths=arrays.get("lengths"))
            y, h, c, _ = ref.forward(x, None if h0 is None else h0[k],
                                     None if c0 is None else c0[k], reverse=d == 1)
            ys.append(y)
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(ys, axis=-1)  # the next layer's input: both directions
    y = x.swapaxes(0, 1) if config["batch_first"] else x
    return y, np.stack(h_n), None if c_n[0] is None else np.stack(c_n)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_reference_matches_onnxruntime(path):
    config, arrays = load_case(path)
    tol = TOLERANCES[config["dtype"]]
    y, h_n, c_n = run_reference(config, arrays)
    assert y.dtype == arrays["y"].dtype == np.dtype(config["dtype"])
    np.testing.assert_allclose(y, arrays["y"], err_msg="y", **tol)
    np.testing.assert_allclose(h_n, arrays["h_n"], err_msg="h_n", **tol)
    assert (c_n is None) == ("c_n" not in arrays)
    if c_n is not None:
        np.testing.assert_allclose(c_n, arrays["c_n"], err_msg="c_n", **tol)


def make_cyrnn(config):
    """The cyrnn layer of a fixture's config, built from its options."""
    cls = {"LSTM": cyrnn.LSTM, "GRU": cyrnn.GRU}[config["cell"]]
    options = {k: config[k] for k in ("num_layers", "bias", "batch_first", "bidirectional",
                                      "peephole", "reset_after") if k in config}
    return cls(config["input_size"], config["hidden_size"], dtype=config["dtype"], **options)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_cyrnn_matches_onnxruntime(path):
    config, arrays = load_case(path)
    model = make_cyrnn(config)
    model.load_state_dict({k[len("param."):]: v for k, v in arrays.items()
                           if k.startswith("param.")})
    is_lstm = config["cell"] == "LSTM"
    hx = None if config["no_hx"] else \
        ((arrays["h0"], arrays["c0"]) if is_lstm else arrays["h0"])
    y, states = model(arrays["x"], hx, lengths=arrays.get("lengths"))
    tol = TOLERANCES[config["dtype"]]
    np.testing.assert_allclose(y, arrays["y"], err_msg="y", **tol)
    h_n = states[0] if is_lstm else states
    np.testing.assert_allclose(h_n, arrays["h_n"], err_msg="h_n", **tol)
    if is_lstm:
        np.testing.assert_allclose(states[1], arrays["c_n"], err_msg="c_n", **tol)
