"""cyrnn.onnx.export: every layer and option as an ONNX graph that passes
onnx's full check and that onnxruntime runs to cyrnn's outputs (float32
within 1e-5 relative; float64 where onnxruntime has the kernels, and onnx's
reference evaluator for the recurrent operators it lacks), and
cyrnn -> ONNX -> cyrnn giving the same layers and weights back exactly.
Needs onnx and onnxruntime (the test extra)."""
import io

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import onnx  # the test extra has it: missing, the tests fail, not skip
import onnxruntime as ort

import cyrnn  # noqa: E402
import cyrnn.onnx as co  # noqa: E402
from cyrnn.layers import CELL_KEYS, make_layer  # noqa: E402

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def session(data):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # not the warning about overridable initializers
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def checked(data):
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def cyrnn_outputs(model, x, hx=None, lengths=None):
    """cyrnn's outputs as the exported graph names them."""
    stateful = getattr(model, "stateful", False)
    if not stateful:
        return {"y": model(x)}
    y, states = model(x, hx, lengths=lengths)
    out = {"y": y}
    if isinstance(model, cyrnn.Sequential):
        recurrent = states
        names = [""] if len(states) == 1 else [f"_{k}" for k in range(len(states))]
    else:
        recurrent, names = [states], [""]
    for sfx, state in zip(names, recurrent):
        if isinstance(state, tuple):
            out["h_n" + sfx], out["c_n" + sfx] = state
        else:
            out["h_n" + sfx] = state
    return out


def assert_outputs(got, expected, dtype=np.float32):
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        np.testing.assert_allclose(got[name], value, err_msg=name, **TOL[dtype])


def run_ort(data, feed):
    s = session(data)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feed)))


def assert_same_model(a, b):
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


# -- every cell and option -----------------------------------------------------
OPTIONS = {
    "base": {},
    "layers2_bidirectional": {"num_layers": 2, "bidirectional": True},
    "reverse_no_bias": {"reverse": True, "bias": False},
    "layers2_reverse": {"num_layers": 2, "reverse": True},
    "batch_first_layers2": {"batch_first": True, "num_layers": 2},
    "lengths_bidirectional": {"bidirectional": True, "lengths": True},
    "lengths_batch_first_layers3": {"batch_first": True, "num_layers": 3, "lengths": True},
}
I, H, T, B = 3, 5, 6, 4


def layer_case(cell, options, seed=0, dtype=np.float32):
    options = dict(options)
    lengths = options.pop("lengths", False)
    model = make_layer(cell, I, H, seed=seed, dtype=dtype, **options)
    rng = np.random.default_rng(seed)
    shape = (B, T, I) if options.get("batch_first") else (T, B, I)
    x = rng.standard_normal(shape).astype(dtype)
    K = model.num_layers * (2 if model.bidirectional else 1)
    h0 = (rng.standard_normal((K, B, H)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((K, B, H)) * 0.5).astype(dtype)
    L = np.array([T, 2, 5, 1], np.int32) if lengths else None
    return model, x, h0, c0, L


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("cell", CELL_KEYS)
def test_layer_matches_onnxruntime(cell, options):
    model, x, h0, c0, L = layer_case(cell, options)
    data = co.export(model, lengths=L is not None)
    checked(data)
    has_c = model._cell.has_cell_state
    feed = {"x": x} if L is None else {"x": x, "lengths": L}
    # the states are optional inputs: zeros when not fed
    assert_outputs(run_ort(data, feed), cyrnn_outputs(model, x, lengths=L))
    feed.update(h0=h0, **({"c0": c0} if has_c else {}))
    hx = (h0, c0) if has_c else h0
    assert_outputs(run_ort(data, feed), cyrnn_outputs(model, x, hx, L))


def test_graph_inputs_and_outputs():
    model = cyrnn.LSTM(3, 5, 2, bidirectional=True, seed=0)
    s = session(co.export(model, lengths=True))
    assert [(i.name, i.shape, i.type) for i in s.get_inputs()] == [
        ("x", ["time", "batch", 3], "tensor(float)"),
        ("lengths", ["batch"], "tensor(int32)")]
    assert sorted(i.name for i in s.get_overridable_initializers()) == ["c0", "h0"]
    assert [(o.name, o.shape) for o in s.get_outputs()] == [
        ("y", ["time", "batch", 10]), ("h_n", [4, "batch", 5]), ("c_n", [4, "batch", 5])]
    bf = session(co.export(cyrnn.GRU(3, 5, batch_first=True), time_steps=7, batch_size=2))
    assert bf.get_inputs()[0].shape == [2, 7, 3]
    assert bf.get_outputs()[0].shape == [2, 7, 5]


def test_fixed_dimensions():
    model, x, h0, c0, L = layer_case("LSTM_PEEPHOLE", {"num_layers": 2, "lengths": True})
    data = co.export(model, time_steps=T, batch_size=B, lengths=True)
    checked(data)
    assert_outputs(run_ort(data, {"x": x, "lengths": L, "h0": h0, "c0": c0}),
                   cyrnn_outputs(model, x, (h0, c0), L))


def test_batch_first_override():
    """batch_first chooses the graph's layout of x and y, whatever the model's."""
    model, x, h0, _, _ = layer_case("GRU", {"num_layers": 2})
    data = co.export(model, batch_first=True)
    got = run_ort(data, {"x": x.transpose(1, 0, 2).copy(), "h0": h0})
    expected = cyrnn_outputs(model, x, h0)
    np.testing.assert_allclose(got["y"], expected["y"].transpose(1, 0, 2), **TOL[np.float32])
    np.testing.assert_allclose(got["h_n"], expected["h_n"], **TOL[np.float32])


# -- Sequential, Linear, Embedding, Dropout --------------------------------------
def language_model(dtype=np.float32, batch_first=False):
    return cyrnn.Sequential(
        cyrnn.Embedding(20, 6, padding_idx=0, dtype=dtype, seed=0),
        cyrnn.LSTM(6, 5, 2, bidirectional=True, dropout=0.25, batch_first=batch_first,
                   dtype=dtype, seed=1),
        cyrnn.Dropout(0.1, seed=2),
        cyrnn.Linear(10, 7, dtype=dtype, seed=3))


@pytest.mark.parametrize("batch_first", [False, True])
def test_sequential_matches_onnxruntime(batch_first):
    model = language_model(batch_first=batch_first)
    ids = np.random.default_rng(0).integers(0, 20, (3, 6) if batch_first else (6, 3))
    data = co.export(model, lengths=True)
    checked(data)
    L = np.array([6, 1, 4], np.int32)
    assert_outputs(run_ort(data, {"x": ids, "lengths": L}),
                   cyrnn_outputs(model, ids, lengths=L))


def test_two_recurrent_layers_name_their_states():
    model = cyrnn.Sequential(cyrnn.GRU(3, 4, reset_after=False, seed=0), cyrnn.Linear(4, 4, seed=1),
                             cyrnn.RNN(4, 6, nonlinearity="relu", bidirectional=True, seed=2),
                             cyrnn.LSTM(12, 2, reverse=True, seed=3))
    data = co.export(model)
    checked(data)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    hx = [rng.standard_normal((1, 2, 4)).astype(np.float32), None,
          (rng.standard_normal((1, 2, 2)).astype(np.float32),
           rng.standard_normal((1, 2, 2)).astype(np.float32))]
    feed = {"x": x, "h0_0": hx[0], "h0_2": hx[2][0], "c0_2": hx[2][1]}
    assert_outputs(run_ort(data, feed), cyrnn_outputs(model, x, hx))


@pytest.mark.parametrize("model", [
    cyrnn.Linear(4, 3, seed=0), cyrnn.Linear(4, 3, bias=False, seed=0),
    cyrnn.Embedding(9, 4, seed=0), cyrnn.Sequential(cyrnn.Linear(4, 8, seed=0), cyrnn.Dropout(0.5),
                                                    cyrnn.Linear(8, 2, seed=1))],
    ids=["linear", "linear_no_bias", "embedding", "dense_stack"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feed_forward_models(model, dtype):
    """float64 too: onnxruntime has MatMul, Add and Gather for double."""
    if dtype == np.float64:
        model = co.load(co.export(model), dtype=np.float64)
    data = co.export(model)
    checked(data)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, (5, 2)) if isinstance(model, cyrnn.Embedding) else \
        rng.standard_normal((5, 2, 4)).astype(dtype)
    assert_outputs(run_ort(data, {"x": x}), cyrnn_outputs(model, x), dtype)


def test_dropout_alone():
    model = cyrnn.Dropout(0.3)
    data = co.export(model)
    checked(data)
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(run_ort(data, {"x": x})["y"], x)


# -- float64 ---------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["LSTM", "LSTM_PEEPHOLE", "GRU", "GRU_RESET_BEFORE", "RNN_TANH"])
def test_float64_in_onnx_reference(cell):
    """onnxruntime 1.32 refuses LSTM and GRU in float64 ("does not support
    double yet") and has no double RNN kernel; onnx's reference evaluator
    runs them (but not RNN's Relu, nor sequence_lens)."""
    from onnx.reference import ReferenceEvaluator
    model, x, h0, c0, _ = layer_case(cell, {"num_layers": 2, "bidirectional": True},
                                     dtype=np.float64)
    data = co.export(model)
    proto = checked(data)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    has_c = model._cell.has_cell_state
    feed = {"x": x, "h0": h0, **({"c0": c0} if has_c else {})}
    names = [o.name for o in proto.graph.output]
    got = dict(zip(names, ReferenceEvaluator(proto).run(None, feed)))
    assert_outputs(got, cyrnn_outputs(model, x, (h0, c0) if has_c else h0), np.float64)


# What onnxruntime says when it has no double kernel of an operator.
NO_DOUBLE_KERNEL = r"does not support double|Could not find an implementation"


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_float64_in_onnxruntime_when_it_can(cell):
    """Matches cyrnn where onnxruntime has the double kernel; where it has
    none (1.32: none of the three), it refuses the graph for that reason
    and no other (the graph itself is valid: the reference evaluator
    runs it, above)."""
    model, x, h0, c0, _ = layer_case(cell, {}, dtype=np.float64)
    data = co.export(model)
    try:
        got = run_ort(data, {"x": x})
    except Exception as exc:  # onnxruntime's Fail / NotImplemented
        assert re.search(NO_DOUBLE_KERNEL, str(exc)), str(exc)
    else:
        assert_outputs(got, cyrnn_outputs(model, x), np.float64)


# -- the round trip cyrnn -> ONNX -> cyrnn -------------------------------------------
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("cell", CELL_KEYS)
def test_round_trip_gives_the_same_layer(cell, options):
    model = layer_case(cell, options)[0]
    assert_same_model(co.load(co.export(model)), model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_sequential(dtype, tmp_path):
    model = language_model(dtype, batch_first=True)
    path = tmp_path / "model.onnx"
    co.export(model, path)
    again = co.load(path)
    assert_same_model(again, model)
    assert again[0].padding_idx == 0 and again[1].dropout == 0.25 and again[2].p == 0.1


def test_round_trip_without_metadata_merges_the_layers():
    """Without cyrnn's metadata (another exporter's graph) the same chain
    comes back with Dropout (identity at inference) and padding_idx gone."""
    model = language_model()
    proto = onnx.load_from_string(co.export(model))
    del proto.metadata_props[:]
    again = co.load(proto.SerializeToString())
    assert [type(layer).__name__ for layer in again] == ["Embedding", "LSTM", "Linear"]
    kept = {k: v for k, v in model.state_dict().items()}
    renamed = {k.replace("3.", "2.", 1) if k.startswith("3.") else k: v for k, v in kept.items()}
    got = again.state_dict()
    assert list(got) == list(renamed)
    for name in got:
        np.testing.assert_array_equal(got[name], renamed[name])


def test_file_objects_paths_and_bytes(tmp_path):
    model = cyrnn.GRU(2, 3, seed=0)
    data = co.export(model)
    assert isinstance(data, bytes)
    buffer = io.BytesIO()
    assert co.export(model, buffer) is None
    co.export(model, str(tmp_path / "a.onnx"))
    co.export(model, tmp_path / "b.onnx")
    assert buffer.getvalue() == data == (tmp_path / "a.onnx").read_bytes() == \
        (tmp_path / "b.onnx").read_bytes()
    for source in (data, io.BytesIO(data), tmp_path / "a.onnx", str(tmp_path / "b.onnx")):
        assert_same_model(co.load(source), model)


# -- what cannot be exported -------------------------------------------------------
class Tanh:
    def __call__(self, x):
        return np.tanh(x)

    def forward(self, x):
        return np.tanh(x), None

    def backward(self, tape, dy):
        return None

    def parameters(self):
        return {}

    state_dict = parameters

    def load_state_dict(self, state_dict, strict=True):
        pass


@pytest.mark.parametrize("model, error, match", [
    (cyrnn.LSTM(3, 5, proj_size=2), ValueError, "proj_size=2"),
    (cyrnn.Sequential(cyrnn.Linear(3, 3), cyrnn.LSTM(3, 4, proj_size=2)), ValueError,
     r"model\[1\] has proj_size"),
    (cyrnn.Sequential(cyrnn.Sequential(cyrnn.Linear(2, 2))), TypeError, "nested Sequential"),
    (cyrnn.Sequential(cyrnn.Linear(2, 2), Tanh()), TypeError, r"model\[1\].*Tanh"),
    (cyrnn.LSTMCell(2, 3), TypeError, "LSTMCell"),
    ("LSTM", TypeError, "str"),
    (cyrnn.Sequential(cyrnn.Linear(2, 3), cyrnn.Embedding(4, 2)), ValueError,
     "Embedding after other layers"),
])
def test_refused(model, error, match):
    with pytest.raises(error, match=match):
        co.export(model)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"opset": 13}, ValueError, "opset must be an integer from 14"),
    ({"opset": 10 ** 6}, ValueError, "opset"),
    ({"opset": 17.0}, ValueError, "opset"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"time_steps": True}, ValueError, "time_steps"),
    ({"batch_first": 1}, TypeError, "batch_first"),
    ({"lengths": "yes"}, TypeError, "lengths"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        co.export(cyrnn.GRU(2, 3), **kwargs)


def test_lengths_need_a_recurrent_layer():
    with pytest.raises(ValueError, match="no.*recurrent|has none"):
        co.export(cyrnn.Linear(2, 3), lengths=True)
    with pytest.raises(TypeError, match="f must be"):
        co.export(cyrnn.Linear(2, 3), 42)


@pytest.mark.parametrize("opset", [14, 21])
def test_other_opsets(opset):
    model, x, h0, c0, L = layer_case("LSTM", {"num_layers": 2, "lengths": True})
    data = co.export(model, opset=opset, lengths=True)
    proto = checked(data)
    assert proto.opset_import[0].version == opset
    assert_outputs(run_ort(data, {"x": x, "lengths": L}), cyrnn_outputs(model, x, lengths=L))


def test_import_cyrnn_does_not_import_onnx():
    import subprocess
    import sys
    code = ("import sys, cyrnn, cyrnn.onnx; import numpy as np; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, "
            "sorted(m for m in sys.modules if 'onnx' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_clear_import_error_without_onnx():
    import subprocess
    import sys
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import cyrnn, cyrnn.onnx\n"
            "try:\n    cyrnn.onnx.export(cyrnn.GRU(2, 3))\n"
            "except ImportError as exc:\n    assert 'pip install \"cyrnn[onnx]\"' in str(exc), exc\n"
            "else:\n    raise SystemExit('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- properties over shapes and options ---------------------------------------------
@st.composite
def models(draw):
    cell = draw(st.sampled_from(CELL_KEYS))
    direction = draw(st.sampled_from(["forward", "bidirectional", "reverse"]))
    options = dict(num_layers=draw(st.integers(1, 2)), bias=draw(st.booleans()),
                   batch_first=draw(st.booleans()),
                   bidirectional=direction == "bidirectional", reverse=direction == "reverse")
    I, H = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2 ** 16))
    layers = []
    embedding = draw(st.booleans())
    if embedding:
        layers.append(cyrnn.Embedding(draw(st.integers(1, 6)), I, seed=seed))
    recurrent = make_layer(cell, I, H, seed=seed + 1, **options)
    layers.append(recurrent)
    if draw(st.booleans()):
        layers.append(cyrnn.Linear(recurrent.output_size, draw(st.integers(1, 4)),
                                   bias=draw(st.booleans()), seed=seed + 2))
    model = layers[0] if len(layers) == 1 else cyrnn.Sequential(*layers)
    T, B = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    lead = (B, T) if options["batch_first"] else (T, B)
    x = rng.integers(0, layers[0].num_embeddings, lead) if embedding else \
        rng.standard_normal(lead + (I,)).astype(np.float32)
    lengths = rng.integers(1, T + 1, B).astype(np.int32) if draw(st.booleans()) else None
    K = recurrent.num_layers * (2 if recurrent.bidirectional else 1)
    hx = None
    if draw(st.booleans()):
        h0 = rng.standard_normal((K, B, H)).astype(np.float32)
        hx = (h0, rng.standard_normal((K, B, H)).astype(np.float32)) \
            if recurrent._cell.has_cell_state else h0
    return model, x, lengths, hx


def state_feed(hx):
    if hx is None:
        return {}
    return {"h0": hx[0], "c0": hx[1]} if isinstance(hx, tuple) else {"h0": hx}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_property_export_matches_onnxruntime(case):
    model, x, lengths, hx = case
    data = co.export(model, lengths=lengths is not None)
    checked(data)
    feed = {"x": x, **state_feed(hx), **({} if lengths is None else {"lengths": lengths})}
    stateful_hx = [hx] if isinstance(model, cyrnn.Sequential) else hx
    assert_outputs(run_ort(data, feed), cyrnn_outputs(model, x, stateful_hx, lengths))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_property_export_then_load(case):
    model, x, lengths, hx = case
    data = co.export(model, lengths=lengths is not None)
    graph = co.load_graph(data)
    assert_same_model(graph.model, model)
    feed = {"x": x, **state_feed(hx), **({} if lengths is None else {"lengths": lengths})}
    names = [o.name for o in onnx.load_from_string(data).graph.output]
    stateful_hx = [hx] if isinstance(model, cyrnn.Sequential) else hx
    expected = cyrnn_outputs(model, x, stateful_hx, lengths)
    got = dict(zip(names, graph.run(None, feed)))
    for name in names:  # the same model: the very same numbers
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
