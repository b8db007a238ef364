"""Models exported by torch.onnx.export (the TorchScript exporter, torch
2.13.0, opset 17; tools/make_torch_onnx_fixtures.py) read by cyrnn.onnx:
the layers torch had, torch's weights exactly, torch's outputs. torch is not
needed here: its outputs are stored beside each model in
tests/data/onnx_torch."""
import json
import pathlib

import numpy as np
import pytest

import onnx  # noqa: F401  the test extra has it: missing, the tests fail

import cyrnn  # noqa: E402
import cyrnn.onnx as co  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data" / "onnx_torch"
# fixture -> (torch module name -> cyrnn's prefix of its parameters, the model cyrnn builds)
MODELS = {
    "emb_lstm2_bi": ({"emb": "0.", "lstm": "1.", "lin": "2."},
                     "Sequential(\n  (0): Embedding(30, 8, dtype=float32)\n"
                     "  (1): LSTM(8, 12, num_layers=2, bidirectional=True, dtype=float32)\n"
                     "  (2): Linear(24, 30, dtype=float32)\n)"),
    "emb_lstm2_bi_states": ({"emb": "0.", "lstm": "1.", "lin": "2."},
                            "Sequential(\n  (0): Embedding(30, 8, dtype=float32)\n"
                            "  (1): LSTM(8, 12, num_layers=2, bidirectional=True, "
                            "dtype=float32)\n  (2): Linear(24, 30, dtype=float32)\n)"),
    "gru2_batch_first": ({"gru": "0.", "lin": "1."},
                         "Sequential(\n  (0): GRU(6, 10, num_layers=2, batch_first=True, "
                         "dtype=float32)\n  (1): Linear(10, 4, dtype=float32)\n)"),
    "rnn_relu_bi": ({"rnn": ""},
                    "RNN(5, 7, bidirectional=True, nonlinearity='relu', dtype=float32)"),
}
TOL = dict(rtol=1e-5, atol=1e-6)


def test_fixture_set_is_complete():
    assert {p.stem for p in DATA.glob("*.onnx")} == set(MODELS)
    assert {p.stem for p in DATA.glob("*.npz")} == set(MODELS)


def fixture(name):
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


@pytest.mark.parametrize("name", MODELS)
def test_the_layers_and_torch_weights_exactly(name):
    config, arrays = fixture(name)
    prefixes, expected_repr = MODELS[name]
    model = co.load(DATA / f"{name}.onnx")
    assert repr(model) == expected_repr
    torch_params = {}
    for key, value in arrays.items():
        if key.startswith("param."):
            module, _, param = key[len("param."):].partition(".")
            torch_params[prefixes[module] + param] = value
    got = model.state_dict()
    assert sorted(got) == sorted(torch_params)
    for key, value in torch_params.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(got[key], value, err_msg=key)


@pytest.mark.parametrize("call", [0, 1])
@pytest.mark.parametrize("name", MODELS)
def test_torch_outputs(name, call):
    """Two calls of different time and batch sizes (the axes are dynamic)."""
    config, arrays = fixture(name)
    graph = co.load_graph(DATA / f"{name}.onnx")
    feed = {n: arrays[f"in{call}.{n}"] for n in config["inputs"]}
    for value, out in zip(graph.run(config["outputs"], feed), config["outputs"]):
        expected = arrays[f"out{call}.{out}"]
        assert value.shape == expected.shape and value.dtype == expected.dtype, out
        np.testing.assert_allclose(value, expected, err_msg=out, **TOL)


def test_torch_outputs_by_the_model_itself():
    """graph.model called as a cyrnn model gives torch's outputs: the
    states are cyrnn's (torch's) (layers*directions, batch, hidden)."""
    config, arrays = fixture("emb_lstm2_bi_states")
    model = co.load(DATA / "emb_lstm2_bi_states.onnx")
    out, [(h_n, c_n)] = model(arrays["in0.ids"], [(arrays["in0.h0"], arrays["in0.c0"])])
    np.testing.assert_allclose(out, arrays["out0.out"], **TOL)
    np.testing.assert_allclose(h_n, arrays["out0.h_n"], **TOL)
    np.testing.assert_allclose(c_n, arrays["out0.c_n"], **TOL)


@pytest.mark.parametrize("name", MODELS)
def test_torch_to_cyrnn_to_onnxruntime(name):
    """The full circle: torch's graph, read by cyrnn, written again by cyrnn
    and run by onnxruntime, still gives torch's outputs."""
    import onnxruntime as ort
    config, arrays = fixture(name)
    model = co.load(DATA / f"{name}.onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(co.export(model), options, providers=["CPUExecutionProvider"])
    feed = {"x": arrays[f"in0.{config['inputs'][0]}"]}
    if "h0" in config["inputs"]:
        feed["h0"] = arrays["in0.h0"]
    if "c0" in config["inputs"]:
        feed["c0"] = arrays["in0.c0"]
    got = session.run(None, feed)
    for value, out in zip(got, config["outputs"]):
        np.testing.assert_allclose(value, arrays[f"out0.{out}"], err_msg=out, **TOL)


def max_errors():
    """fixture -> output -> max |cyrnn - torch| over both calls (for the report)."""
    errors = {}
    for name in MODELS:
        config, arrays = fixture(name)
        graph = co.load_graph(DATA / f"{name}.onnx")
        for call in (0, 1):
            feed = {n: arrays[f"in{call}.{n}"] for n in config["inputs"]}
            for value, out in zip(graph.run(config["outputs"], feed), config["outputs"]):
                err = float(np.max(np.abs(value - arrays[f"out{call}.{out}"])))
                errors.setdefault(name, {})[out] = max(errors.get(name, {}).get(out, 0), err)
    return errors


if __name__ == "__main__":
    print(json.dumps(max_errors(), indent=1))
