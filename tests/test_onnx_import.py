"""cyrnn.onnx.load / load_graph: ONNX's own backend node tests of LSTM, GRU
and RNN; graphs of the shapes exporters write (layout 1, lone reverse
directions, states in and out, dense heads by Gemm or MatMul + Add, Gather
embeddings, the plumbing between), each against onnxruntime or onnx's
reference evaluator; and the graphs cyrnn refuses, each with a clear
ValueError. The torch-exported fixtures are in test_onnx_torch.py, hostile
files in test_onnx_fuzz.py. Needs onnx and onnxruntime (the test extra)."""
import importlib

import numpy as np
import pytest

import onnx  # the test extra has it: missing, the tests fail, not skip
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import cyrnn  # noqa: E402
import cyrnn.onnx as co  # noqa: E402

F32 = TensorProto.FLOAT


# -- ONNX's backend node tests ---------------------------------------------------
def node_test_cases():
    """The LSTM, GRU and RNN cases of onnx.backend.test.loader.load_node_model_tests():
    importing only their three modules registers the same cases (built by the
    same export functions) in a second instead of all 1900 in seven."""
    import onnx.backend.test.case.node as node_cases
    for module in ("lstm", "gru", "rnn"):
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    return [case for case in node_cases._NodeTestCases
            if [n.op_type for n in case.model.graph.node] in (["LSTM"], ["GRU"], ["RNN"])]


NODE_CASES = node_test_cases()
# name -> why cyrnn cannot pass it (none, with onnx 1.23.2)
NODE_TESTS_NOT_PASSED = {}
WEIGHT_POSITIONS = (1, 2, 3, 7)  # W, R, B, P: inputs in the node tests, weights for cyrnn


def test_the_node_tests_are_all_there():
    names = {case.name for case in NODE_CASES}
    for op in ("lstm", "gru", "simple_rnn"):
        for variant in ("defaults", "with_initial_bias", "batchwise", "reverse",
                        "bidirectional"):
            assert f"test_{op}_{variant}" in names
    assert {"test_lstm_with_peepholes", "test_gru_seq_length", "test_rnn_seq_length"} <= names


@pytest.mark.parametrize("case", NODE_CASES, ids=[case.name for case in NODE_CASES])
def test_onnx_node_test(case, tmp_path):
    """Written to disk as ONNX's test data is (model.onnx,
    test_data_set_k/input_j.pb, output_j.pb) and read back from there."""
    if case.name in NODE_TESTS_NOT_PASSED:
        pytest.xfail(NODE_TESTS_NOT_PASSED[case.name])
    node = case.model.graph.node[0]
    (tmp_path / "model.onnx").write_bytes(case.model.SerializeToString())
    names = [value.name for value in case.model.graph.input]
    for k, (inputs, outputs) in enumerate(case.data_sets):
        folder = tmp_path / f"test_data_set_{k}"
        folder.mkdir()
        for j, array in enumerate(inputs):
            (folder / f"input_{j}.pb").write_bytes(
                numpy_helper.from_array(array, names[j]).SerializeToString())
        for j, array in enumerate(outputs):
            (folder / f"output_{j}.pb").write_bytes(
                numpy_helper.from_array(array).SerializeToString())
    for folder in sorted(tmp_path.glob("test_data_set_*")):
        feed = {}
        for path in sorted(folder.glob("input_*.pb")):
            tensor = TensorProto()
            tensor.ParseFromString(path.read_bytes())
            feed[tensor.name] = numpy_helper.to_array(tensor)
        expected = []
        for path in sorted(folder.glob("output_*.pb")):
            tensor = TensorProto()
            tensor.ParseFromString(path.read_bytes())
            expected.append(numpy_helper.to_array(tensor))
        weights = {n: feed.pop(n) for k, n in enumerate(node.input)
                   if k in WEIGHT_POSITIONS and n}
        graph = co.load_graph(tmp_path / "model.onnx", constants=weights)
        got = graph.run(None, feed)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_node_test_weights_must_be_given():
    case = next(c for c in NODE_CASES if c.name == "test_lstm_defaults")
    with pytest.raises(ValueError, match=r"'W' feeds a layer's weights.*constants="):
        co.load(case.model.SerializeToString())
    with pytest.raises(ValueError, match="not inputs of the graph"):
        co.load(case.model.SerializeToString(), constants={"nope": np.zeros(1)})


# -- graphs built here -------------------------------------------------------------
def session_outputs(model, feed):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    return s.run(None, feed)


def reference_outputs(model, feed):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feed)


def make_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(v), k)
                                           for k, v in dict(inits).items()])
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def tensor(name, shape, elem=F32):
    return helper.make_tensor_value_info(name, elem, shape)


def weights(rng, op, D, I, H, bias=True, peephole=False):
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    w = {"W": rng.uniform(-0.7, 0.7, (D, G * H, I)).astype(np.float32),
         "R": rng.uniform(-0.7, 0.7, (D, G * H, H)).astype(np.float32)}
    if bias:
        w["B"] = rng.uniform(-0.7, 0.7, (D, 2 * G * H)).astype(np.float32)
    if peephole:
        w["P"] = rng.uniform(-0.7, 0.7, (D, 3 * H)).astype(np.float32)
    return w


def assert_runs_as(model, feed, runner=session_outputs, **load):
    graph = co.load_graph(model.SerializeToString(), **load)
    expected = runner(model, feed)
    got = graph.run(None, feed)
    for g, e, out in zip(got, expected, model.graph.output):
        assert g.shape == e.shape, out.name
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=out.name)
    return graph


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_layout_1_stacked_with_states(op, direction):
    """Two nodes of layout 1 (batch first), states (batch, D, H) in and out,
    checked with onnx's reference evaluator (onnxruntime refuses layout=1)."""
    rng = np.random.default_rng(0)
    D, I, H, T, B = (2 if direction == "bidirectional" else 1), 3, 4, 5, 2
    nodes, inits, state_inputs, outs = [], {}, [], []
    x = "X"
    for layer in range(2):
        w = weights(rng, op, D, I if layer == 0 else D * H, H)
        inits.update({f"{k}{layer}": v for k, v in w.items()})
        state_inputs.append(tensor(f"h{layer}", ["B", D, H]))
        kinds = ["h", "c"] if op == "LSTM" else ["h"]
        if op == "LSTM":
            state_inputs.append(tensor(f"c{layer}", ["B", D, H]))
        inputs = [x, f"W{layer}", f"R{layer}", f"B{layer}", ""] + [f"{k}{layer}" for k in kinds]
        outputs = [f"Y{layer}"] + [f"Y{k}{layer}" for k in kinds]
        nodes.append(helper.make_node(op, inputs, outputs, hidden_size=H, layout=1,
                                      direction=direction))
        outs += [tensor(f"Y{k}{layer}", ["B", D, H]) for k in kinds]
        # Y (B, T, D, H) -> (B, T, D*H)
        nodes.append(helper.make_node("Reshape", [f"Y{layer}", "shape"], [f"X{layer + 1}"]))
        x = f"X{layer + 1}"
    inits["shape"] = np.array([0, 0, -1], np.int64)
    model = make_model(nodes, [tensor("X", ["B", "T", I])] + state_inputs,
                       [tensor(x, ["B", "T", D * H])] + outs, inits)
    feed = {"X": rng.standard_normal((B, T, I)).astype(np.float32)}
    for value in state_inputs:
        feed[value.name] = rng.standard_normal((B, D, H)).astype(np.float32)
    graph = assert_runs_as(model, feed, reference_outputs)
    layer = graph.model
    assert layer.num_layers == 2 and layer.batch_first
    assert layer.bidirectional == (D == 2) and layer.reverse == (direction == "reverse")
    assert graph.input_roles == {"X": "x", **{v.name: "state" for v in state_inputs}}


def test_a_lone_reverse_direction_equals_the_reverse_half():
    """direction="reverse" becomes reverse=True, with forward names (weight_ih_l0)."""
    rng = np.random.default_rng(1)
    w = weights(rng, "GRU", 1, 3, 4)
    node = helper.make_node("GRU", ["X", "W", "R", "B", "lens"], ["Y", "Y_h"], hidden_size=4,
                            direction="reverse", linear_before_reset=1)
    model = make_model([node], [tensor("X", ["T", "B", 3]), tensor("lens", ["B"], TensorProto.INT32)],
                       [tensor("Y", ["T", 1, "B", 4]), tensor("Y_h", [1, "B", 4])], w)
    feed = {"X": rng.standard_normal((6, 3, 3)).astype(np.float32),
            "lens": np.array([6, 2, 4], np.int32)}
    graph = assert_runs_as(model, feed)
    layer = graph.model
    assert layer.reverse and not layer.bidirectional and layer.reset_after
    assert sorted(layer.state_dict()) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0",
                                          "weight_ih_l0"]
    bi = cyrnn.GRU(3, 4, bidirectional=True)
    bi.load_state_dict({**{k + "_reverse": v for k, v in layer.state_dict().items()},
                        **{k: np.zeros_like(v) for k, v in layer.state_dict().items()}})
    y_bi, _ = bi(feed["X"], lengths=feed["lens"])
    y, _ = layer(feed["X"], lengths=feed["lens"])
    np.testing.assert_allclose(y, y_bi[..., 4:], rtol=1e-6, atol=1e-7)
    # and back out again: export writes direction="reverse"
    proto = onnx.load_from_string(co.export(layer))
    node = next(n for n in proto.graph.node if n.op_type == "GRU")
    assert helper.get_attribute_value(node.attribute[[a.name for a in node.attribute]
                                                     .index("direction")]) == b"reverse"


def test_tf2onnx_style_states_and_dense_head():
    """Keras through tf2onnx: batch-major X transposed for the node, Y_h
    squeezed to (B, H), Y squeezed and transposed back, a Dense layer as
    MatMul + Add with the bias first, explicit activations, an inference
    Dropout, sequence_lens cast from int64."""
    rng = np.random.default_rng(2)
    I, H, V = 3, 5, 4
    w = weights(rng, "LSTM", 1, I, H)
    inits = dict(w, dense_w=rng.standard_normal((H, V)).astype(np.float32),
                 dense_b=rng.standard_normal(V).astype(np.float32),
                 axis1=np.array([1], np.int64), axis0=np.array([0], np.int64))
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("Cast", ["lens64"], ["lens"], to=TensorProto.INT32),
        helper.make_node("LSTM", ["xt", "W", "R", "B", "lens"], ["Y", "Y_h", "Y_c"],
                         hidden_size=H, activations=["Sigmoid", "Tanh", "Tanh"]),
        helper.make_node("Squeeze", ["Y", "axis1"], ["ys"]),
        helper.make_node("Transpose", ["ys"], ["yb"], perm=[1, 0, 2]),
        helper.make_node("Dropout", ["yb"], ["yd"]),
        helper.make_node("MatMul", ["yd", "dense_w"], ["mm"]),
        helper.make_node("Add", ["dense_b", "mm"], ["out"]),
        helper.make_node("Squeeze", ["Y_h", "axis0"], ["state_h"]),
        helper.make_node("Squeeze", ["Y_c", "axis0"], ["state_c"]),
    ]
    model = make_model(nodes, [tensor("x", ["B", "T", I]),
                               tensor("lens64", ["B"], TensorProto.INT64)],
                       [tensor("out", ["B", "T", V]), tensor("state_h", ["B", H]),
                        tensor("state_c", ["B", H])], inits)
    feed = {"x": rng.standard_normal((3, 4, I)).astype(np.float32),
            "lens64": np.array([4, 1, 3], np.int64)}
    graph = assert_runs_as(model, feed)
    assert [type(layer).__name__ for layer in graph.model] == ["LSTM", "Linear"]
    assert graph.model.batch_first and graph.input_roles["lens64"] == "lengths"


def test_gemm_head_and_shape_plumbing():
    """A dense head on (T*B, F): Reshape to 2-D, Gemm (transB, alpha, beta),
    Reshape back with the dimensions taken from Shape; an embedding Gather
    first; a GRU of the default linear_before_reset=0; zero initial states
    from ConstantOfShape; h_n split into rows and concatenated back."""
    rng = np.random.default_rng(3)
    V, E, H, O = 7, 3, 4, 2
    w = weights(rng, "GRU", 2, E, H)
    inits = dict(w, table=rng.standard_normal((V, E)).astype(np.float32),
                 gemm_b=rng.standard_normal((O, 2 * H)).astype(np.float32),
                 gemm_c=rng.standard_normal((1, O)).astype(np.float32),
                 flat=np.array([-1, 2 * H], np.int64), lead=np.array([0, 2], np.int64),
                 one=np.array([1], np.int64), two=np.array([2], np.int64),
                 units=np.array([H], np.int64), zero=np.array([0], np.int64),
                 o=np.array([O], np.int64), split=np.array([1, 1], np.int64))
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("Shape", ["ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["b"], axis=0),
        helper.make_node("Concat", ["two", "b", "units"], ["h_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["h_shape"], ["h0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("GRU", ["emb", "W", "R", "B", "", "h0"], ["Y", "Y_h"], hidden_size=H,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Yt", "flat"], ["rows"]),
        helper.make_node("Gemm", ["rows", "gemm_b", "gemm_c"], ["dense"], transB=1,
                         alpha=0.5, beta=2.0),
        helper.make_node("Slice", ["ids_shape", "zero", "two"], ["tb"]),
        helper.make_node("Concat", ["tb", "o"], ["out_shape"], axis=0),
        helper.make_node("Reshape", ["dense", "out_shape"], ["out"]),
        helper.make_node("Split", ["Y_h", "split"], ["fwd", "bwd"], axis=0),
        helper.make_node("Concat", ["bwd", "fwd"], ["h_n"], axis=0),
    ]
    model = make_model(nodes, [tensor("ids", ["T", "B"], TensorProto.INT64)],
                       [tensor("out", ["T", "B", O]), tensor("h_n", [2, "B", H])], inits)
    feed = {"ids": rng.integers(0, V, (5, 3))}
    graph = assert_runs_as(model, feed)
    emb, gru, lin = graph.model
    assert not gru.reset_after and gru.bidirectional and lin.in_features == 2 * H


def test_rnn_activations_and_torch_names():
    """RNN Relu given for both directions; the weights come back in torch's layout."""
    rng = np.random.default_rng(4)
    w = weights(rng, "RNN", 2, 3, 4)
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=4,
                            direction="bidirectional", activations=["Relu", "Relu"])
    model = make_model([node], [tensor("X", ["T", "B", 3])], [tensor("Y", ["T", 2, "B", 4])], w)
    feed = {"X": rng.standard_normal((4, 2, 3)).astype(np.float32)}
    layer = assert_runs_as(model, feed).model
    assert layer.nonlinearity == "relu"
    sd = layer.state_dict()
    np.testing.assert_array_equal(sd["weight_ih_l0_reverse"], w["W"][1])
    np.testing.assert_array_equal(sd["bias_hh_l0"], w["B"][0, 4:])


def test_lstm_gate_order_and_peepholes_to_torch_layout():
    rng = np.random.default_rng(5)
    H = 2
    w = weights(rng, "LSTM", 1, 3, H, peephole=True)
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y"], hidden_size=H)
    model = make_model([node], [tensor("X", ["T", "B", 3])], [tensor("Y", ["T", 1, "B", H])], w)
    feed = {"X": rng.standard_normal((4, 2, 3)).astype(np.float32)}
    layer = assert_runs_as(model, feed).model
    sd = layer.state_dict()
    i, o, f, c = np.split(w["W"][0], 4)  # ONNX's order
    np.testing.assert_array_equal(sd["weight_ih_l0"], np.concatenate([i, f, c, o]))  # torch's
    p_i, p_o, p_f = np.split(w["P"][0], 3)
    np.testing.assert_array_equal(sd["weight_peephole_l0"], np.stack([p_i, p_f, p_o]))


def test_dtype_conversion_and_float64_graphs():
    rng = np.random.default_rng(6)
    w = {k: v.astype(np.float64) for k, v in weights(rng, "GRU", 1, 3, 4).items()}
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=4,
                            linear_before_reset=1)
    model = make_model([node], [tensor("X", ["T", "B", 3], TensorProto.DOUBLE)],
                       [tensor("Y", ["T", 1, "B", 4], TensorProto.DOUBLE),
                        tensor("Y_h", [1, "B", 4], TensorProto.DOUBLE)], w)
    feed = {"X": rng.standard_normal((3, 2, 3))}
    graph = co.load_graph(model.SerializeToString())
    assert graph.model.dtype == np.float64
    for got, expected in zip(graph.run(None, feed), reference_outputs(model, feed)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert co.load(model.SerializeToString(), dtype=np.float32).dtype == np.float32


def test_run_checks_its_arguments():
    graph = co.load_graph(co.export(cyrnn.LSTM(2, 3, seed=0), lengths=True))
    x = np.zeros((2, 1, 2), np.float32)
    with pytest.raises(ValueError, match="no outputs"):
        graph.run(["z"], {"x": x})
    with pytest.raises(ValueError, match="no inputs"):
        graph.run(None, {"x": x, "q": x})
    with pytest.raises(ValueError, match="data input 'x'"):
        graph.run(None, {})
    with pytest.raises(ValueError, match="lengths"):
        graph.run(None, {"x": x})
    y, h, c = graph.run(None, {"x": x, "lengths": [2], "h0": np.ones((1, 1, 3), np.float32)})
    expected = graph.model(x, (np.ones((1, 1, 3), np.float32), np.zeros((1, 1, 3), np.float32)),
                           lengths=[2])
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(c, expected[1][1])


def test_tampered_metadata_is_only_a_hint():
    """cyrnn's metadata that does not fit the graph is ignored: the graph decides."""
    model = cyrnn.Sequential(cyrnn.LSTM(3, 4, seed=0), cyrnn.Dropout(0.5), cyrnn.Linear(4, 2))
    proto = onnx.load_from_string(co.export(model))
    for text in ['{"class": "LSTM", "config": {"input_size": 3000000000}}', "[[[[" * 2000,
                 '{"class": "Sequential", "config": {"layers": [], "tied": {}}}', "NaN",
                 '{"class": "Sequential", "config": {"layers": [{"class": "Linear", '
                 '"config": {"in_features": 3, "out_features": 4, "bias": true, '
                 '"dtype": "float32"}}], "tied": {}}}']:
        proto.metadata_props[0].value = text
        again = co.load(proto.SerializeToString())
        assert [type(layer).__name__ for layer in again] == ["LSTM", "Linear"]


# -- what cannot be read ------------------------------------------------------------
def lstm_model(attrs=None, extra_nodes=(), output="Y", inputs=("X", "W", "R", "B"),
               inits=None, graph_inputs=None, outputs=None):
    rng = np.random.default_rng(0)
    w = weights(rng, "LSTM", 1, 3, 4)
    if inits:
        w.update(inits)
    node = helper.make_node("LSTM", list(inputs), ["Y", "Y_h", "Y_c"],
                            **{"hidden_size": 4, **(attrs or {})})
    graph = helper.make_graph(
        [node, *extra_nodes], "g", graph_inputs or [tensor("X", ["T", "B", 3])],
        outputs or [tensor(output, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()])
    return helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", 17)])


def refused(model, match):
    with pytest.raises(ValueError, match=match) as info:
        co.load(model.SerializeToString())
    assert len(str(info.value)) < 2000
    return info


@pytest.mark.parametrize("attrs, match", [
    ({"clip": 3.0}, r"node 0 \(LSTM ''\) clips its cell input"),
    ({"input_forget": 1}, "input_forget=1"),
    ({"activations": ["Sigmoid", "Tanh", "Relu"]}, r"no cell computing LSTM"),
    ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, "activations"),
    ({"activations": ["Sigmoid", "Tanh"]}, "takes 3 per direction"),
    ({"direction": "sideways"}, "direction 'sideways'"),
    ({"layout": 2}, "layout 2"),
    ({"hidden_size": 5}, "hidden_size=5"),
    ({"bogus": 1}, "'bogus'"),
])
def test_unsupported_attributes(attrs, match):
    refused(lstm_model(attrs), match)


def test_other_operators_are_named():
    softmax = helper.make_node("Softmax", ["Y"], ["out"], name="head")
    refused(lstm_model(extra_nodes=[softmax], output="out"),
            r"node 1 \(Softmax 'head'\): the operator 'Softmax' is not supported")
    custom = helper.make_node("Fancy", ["Y"], ["out"], domain="com.example")
    refused(lstm_model(extra_nodes=[custom], output="out"), "domain 'com.example'")


@pytest.mark.parametrize("build, match", [
    # Y used twice: a branch
    (lambda: lstm_model(extra_nodes=[
        helper.make_node("Squeeze", ["Y", "one"], ["a"]),
        helper.make_node("MatMul", ["a", "w1"], ["b"]),
        helper.make_node("MatMul", ["a", "w1"], ["c"])], output="c",
        inits={"one": np.array([1], np.int64), "w1": np.ones((4, 4), np.float32)}),
     "chain has gone on"),
    # a dense layer on the final state (Keras return_sequences=False)
    (lambda: lstm_model(extra_nodes=[
        helper.make_node("Squeeze", ["Y_h", "zero"], ["h"]),
        helper.make_node("MatMul", ["h", "w1"], ["out"])], output="out",
        inits={"zero": np.array([0], np.int64), "w1": np.ones((4, 2), np.float32)}),
     "MatMul as a dense layer"),
    # an inner layer's output as a graph output
    (lambda: lstm_model(extra_nodes=[
        helper.make_node("Squeeze", ["Y", "one"], ["a"]),
        helper.make_node("MatMul", ["a", "w1"], ["out"])],
        outputs=[tensor("Y", None), tensor("out", None)],
        inits={"one": np.array([1], np.int64), "w1": np.ones((4, 2), np.float32)}),
     "output of an inner layer"),
    # the time axis sliced (the last step)
    (lambda: lstm_model(extra_nodes=[
        helper.make_node("Slice", ["Y", "m1", "big", "zero"], ["last"])], output="last",
        inits={"m1": np.array([-1], np.int64), "big": np.array([2 ** 62], np.int64),
               "zero": np.array([0], np.int64)}),
     "slices the time or batch axis"),
    # features split apart
    (lambda: lstm_model(extra_nodes=[
        helper.make_node("Reshape", ["Y", "shape"], ["r"])], output="r",
        inits={"shape": np.array([0, 0, 0, 2, 2], np.int64)}),
     "splits or moves"),
    # a non-zero constant initial state
    (lambda: lstm_model(inputs=("X", "W", "R", "B", "", "h0"),
                        inits={"h0": np.ones((1, 2, 4), np.float32)}),
     "non-zero"),
    # states fed from another layer's final state
    (lambda: lstm_model(inputs=("X", "W", "R", "B", "", "Y_h"), output="Y"),
     "before any node makes it"),
    # an intermediate state output of initial state (passthrough)
    (lambda: lstm_model(graph_inputs=[tensor("X", ["T", "B", 3]), tensor("h0", [1, "B", 4])],
                        inputs=("X", "W", "R", "B", "", "h0"),
                        extra_nodes=[helper.make_node("Identity", ["h0"], ["h0_out"])],
                        output="h0_out"),
     "holds initial states"),
    # the data must declare its features
    (lambda: lstm_model(graph_inputs=[tensor("X", ["T", "B", "F"])]),
     "declare its number of features"),
    (lambda: lstm_model(graph_inputs=[tensor("X", None)]), "declares no shape"),
])
def test_unsupported_graphs(build, match):
    refused(build(), match)


def test_weights_of_mixed_types():
    model = lstm_model(inits={"R": np.ones((1, 16, 4), np.float64)})
    refused(model, "R is float64, but its W is float32")


def test_sequence_lens_must_be_one_input():
    rng = np.random.default_rng(0)
    w1, w2 = weights(rng, "GRU", 1, 3, 4), weights(rng, "GRU", 1, 4, 4)
    nodes = [helper.make_node("GRU", ["X", "W1", "R1", "", "lens"], ["Y1"], hidden_size=4),
             helper.make_node("Squeeze", ["Y1", "one"], ["X2"]),
             helper.make_node("GRU", ["X2", "W2", "R2"], ["Y2"], hidden_size=4)]
    model = make_model(nodes, [tensor("X", ["T", "B", 3]), tensor("lens", ["B"], TensorProto.INT32)],
                       [tensor("Y2", ["T", 1, "B", 4])],
                       {"W1": w1["W"], "R1": w1["R"], "W2": w2["W"], "R2": w2["R"],
                        "one": np.array([1], np.int64)})
    refused(model, "same sequence_lens")


def test_an_add_away_from_the_dense_layer_is_no_bias():
    rng = np.random.default_rng(7)
    inits = {"w": rng.standard_normal((3, 2)).astype(np.float32),
             "b": np.ones(2, np.float32), "shape": np.array([0, 0, 2], np.int64)}
    nodes = [helper.make_node("MatMul", ["X", "w"], ["m"]),
             helper.make_node("Reshape", ["m", "shape"], ["r"]),
             helper.make_node("Add", ["r", "b"], ["Y"])]
    model = make_model(nodes, [tensor("X", ["T", "B", 3])], [tensor("Y", ["T", "B", 2])], inits)
    refused(model, "not the bias")
    nodes = [helper.make_node("MatMul", ["X", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["Y"])]
    model = make_model(nodes, [tensor("X", ["T", "B", 3])], [tensor("Y", ["T", "B", 2])], inits)
    linear = assert_runs_as(model, {"X": rng.standard_normal((2, 2, 3)).astype(np.float32)}).model
    np.testing.assert_array_equal(linear.state_dict()["weight"], inits["w"].T)
    np.testing.assert_array_equal(linear.state_dict()["bias"], inits["b"])


def test_a_sequential_of_one_layer_stays_a_sequential():
    model = cyrnn.Sequential(cyrnn.RNN(2, 3, seed=0))
    again = co.load(co.export(model))
    assert isinstance(again, cyrnn.Sequential) and repr(again) == repr(model)


def test_numpy_errors_from_a_damaged_graph_are_labelled():
    """A Squeeze of a constant's axis that is not of size 1: numpy's error,
    reported as the file's."""
    rng = np.random.default_rng(0)
    w = weights(rng, "RNN", 1, 3, 2)
    nodes = [helper.make_node("Squeeze", ["W4", "ax"], ["W"]),
             helper.make_node("RNN", ["X", "W", "R"], ["Y"], hidden_size=2)]
    graph = helper.make_graph(nodes, "g", [tensor("X", ["T", "B", 3])], [tensor("Y", None)],
                              initializer=[numpy_helper.from_array(w["W"][None], "W4"),
                                           numpy_helper.from_array(w["R"], "R"),
                                           numpy_helper.from_array(np.array([2], np.int64),
                                                                   "ax")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="not an ONNX model cyrnn can read: ValueError"):
        co.load(model.SerializeToString())
