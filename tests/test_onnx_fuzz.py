"""cyrnn.onnx.load on malformed and hostile files: truncated or mutated
bytes, wrong shapes, huge declared dimensions, cycles, external data (refused
by default; with external_data=True read only from inside the model's
folder). Each is a ValueError saying what is wrong, nothing is read outside
the model's folder, and memory stays bounded by what the file holds."""
import builtins
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import onnx  # the test extra has it: missing, the tests fail, not skip
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import cyrnn  # noqa: E402
import cyrnn.onnx as co  # noqa: E402

F32 = TensorProto.FLOAT
VALID = co.export(cyrnn.Sequential(cyrnn.Embedding(20, 6, seed=0),
                                   cyrnn.GRU(6, 5, 2, bidirectional=True, seed=1),
                                   cyrnn.Linear(10, 3, seed=2)), lengths=True)


def loads_or_refuses(data):
    """A model, or a ValueError: never another exception, never a crash."""
    try:
        return co.load(data)
    except ValueError as exc:
        assert len(str(exc)) < 3000
        return exc


def refused(data, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        co.load(data, **kwargs)
    assert len(str(info.value)) < 3000
    return info


# -- damaged bytes -------------------------------------------------------------------
def test_every_truncation_is_refused():
    for cut in range(0, len(VALID), 3):
        assert isinstance(loads_or_refuses(VALID[:cut]), ValueError), cut


@pytest.mark.parametrize("data, match", [
    (b"", "holds no graph"),
    (b"\x00" * 64, "not an ONNX model"),
    (b"\xff" * 64, "does not parse"),
    (os.urandom(0) + bytes(range(256)) * 8, "not an ONNX model"),
    (b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10, "does not parse"),  # a field claiming 4 GB
])
def test_garbage(data, match):
    refused(data, match)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                min_size=1, max_size=6),
       st.integers(0, len(VALID)))
def test_mutated_bytes(changes, cut):
    data = bytearray(VALID)
    for position, value in changes:
        data[position] = value
    result = loads_or_refuses(bytes(data[:max(cut, len(data) // 2)]))
    assert isinstance(result, (ValueError, cyrnn.Sequential, cyrnn.GRU, cyrnn.Linear,
                               cyrnn.Embedding))


# -- hostile graphs ------------------------------------------------------------------
def graph_bytes(nodes, inputs, outputs, inits=(), opset=17, tensors=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(v), k)
                                           for k, v in dict(inits).items()] + list(tensors))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def x_input(features=3):
    return helper.make_tensor_value_info("X", F32, ["T", "B", features])


def out(name="Y"):
    return helper.make_tensor_value_info(name, F32, None)


def lstm(inputs=("X", "W", "R"), outputs=("Y",), **attrs):
    return helper.make_node("LSTM", list(inputs), list(outputs), **{"hidden_size": 2, **attrs})


W_OK = {"W": np.zeros((1, 8, 3), np.float32), "R": np.zeros((1, 8, 2), np.float32)}


def huge_tensor(name, dims, data_type=F32, raw=b"\x00" * 16):
    tensor = TensorProto(name=name, data_type=data_type, dims=dims)
    tensor.raw_data = raw
    return tensor


def peak_bytes(function):
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("tensor, match", [
    (huge_tensor("W", [1, 2 ** 31, 2 ** 31]), "holds 16 bytes, but its dims"),
    (huge_tensor("W", [2 ** 62, 4, 4]), "holds 16 bytes"),
    (huge_tensor("W", [1, -8, 3]), "negative dimensions"),
    (huge_tensor("W", [1, 8, 3], raw=b""), "holds 0 values, but its dims"),
    (huge_tensor("W", [1, 8, 3], data_type=TensorProto.STRING), "element type 8"),
    (huge_tensor("W", [1, 8, 3], data_type=TensorProto.COMPLEX64), "element type 14"),
])
def test_declared_sizes_are_checked_before_allocating(tensor, match):
    data = graph_bytes([lstm()], [x_input()], [out()], {"R": W_OK["R"]}, tensors=[tensor])
    peak = peak_bytes(lambda: refused(data, match))
    assert peak < 4 << 20


def test_typed_fields_are_counted_too():
    tensor = TensorProto(name="W", data_type=F32, dims=[1, 2 ** 40, 3])
    tensor.float_data.extend([0.0] * 24)
    data = graph_bytes([lstm()], [x_input()], [out()], {"R": W_OK["R"]}, tensors=[tensor])
    assert peak_bytes(lambda: refused(data, "holds 24 values")) < 4 << 20


@pytest.mark.parametrize("nodes, inits, match", [
    # ConstantOfShape of 10^12 ones, Expand of a constant to 10^12, folded Gather
    ([helper.make_node("ConstantOfShape", ["s"], ["W"],
                       value=numpy_helper.from_array(np.ones(1, np.float32))), lstm()],
     {"s": np.array([1, 10 ** 6, 10 ** 6], np.int64), "R": W_OK["R"]}, "at most"),
    ([helper.make_node("Expand", ["one", "s"], ["W"]), lstm()],
     {"one": np.ones((1, 1, 1), np.float32), "s": np.array([1, 10 ** 6, 10 ** 6], np.int64),
      "R": W_OK["R"]}, "at most"),
    ([helper.make_node("Gather", ["t", "i"], ["W"]), lstm()],
     {"t": np.ones((2, 1 << 16), np.float32), "i": np.zeros((32, 32), np.int64),
      "R": W_OK["R"]}, "at most"),
    # zeros of a data-dependent shape used as weights
    ([helper.make_node("Shape", ["X"], ["s"]),
      helper.make_node("ConstantOfShape", ["s"], ["W"]), lstm()], {"R": W_OK["R"]},
     "depends on the data"),
])
def test_folding_is_bounded(nodes, inits, match):
    data = graph_bytes(nodes, [x_input()], [out()], inits)
    assert peak_bytes(lambda: refused(data, match)) < 64 << 20


@pytest.mark.parametrize("nodes, match", [
    ([helper.make_node("Identity", ["Z"], ["Z"])], "before any node makes it"),
    ([helper.make_node("Identity", ["b"], ["a"]), helper.make_node("Identity", ["a"], ["b"]),
      lstm(("a", "W", "R"))], "before any node makes it"),
    ([lstm(("Y", "W", "R"))], "before any node makes it"),
    ([lstm(), helper.make_node("Identity", ["X"], ["Y"])], "already makes"),
    ([lstm(), helper.make_node("Identity", ["X"], ["X"])], "already makes"),
])
def test_cycles_and_reassignments(nodes, match):
    refused(graph_bytes(nodes, [x_input()], [out()], W_OK), match)


@pytest.mark.parametrize("inits, match", [
    ({"W": np.zeros((8, 3), np.float32)}, "W must be a 3-D float tensor"),
    ({"W": np.zeros((1, 7, 3), np.float32)}, r"W has shape \(1, 7, 3\)"),
    ({"W": np.zeros((2, 8, 3), np.float32)}, "direction=forward needs"),
    ({"W": np.zeros((1, 8, 4), np.float32)}, "has 3 features, but its weights take 4"),
    ({"R": np.zeros((1, 8, 3), np.float32)}, r"R has shape \(1, 8, 3\), expected \(1, 8, 2\)"),
    ({"B": np.zeros((1, 15), np.float32)}, "B has shape"),
    ({"W": np.zeros((1, 8, 3), np.int64)}, "3-D float tensor"),
])
def test_wrong_weight_shapes(inits, match):
    weights = dict(W_OK, **inits)
    inputs = ("X", "W", "R", "B") if "B" in weights else ("X", "W", "R")
    refused(graph_bytes([lstm(inputs)], [x_input()], [out()], weights), match)


def test_huge_hidden_size_and_features_are_only_numbers():
    data = graph_bytes([lstm(hidden_size=10 ** 12)], [x_input()], [out()], W_OK)
    assert peak_bytes(lambda: refused(data, "hidden_size=1000000000000")) < 4 << 20
    data = graph_bytes([lstm()], [x_input(10 ** 15)], [out()], W_OK)
    assert peak_bytes(lambda: refused(data, "weights take 3")) < 4 << 20


@pytest.mark.parametrize("node, match", [
    (helper.make_node("If", ["c"], ["Y"],
                      then_branch=helper.make_graph([], "t", [], []),
                      else_branch=helper.make_graph([], "e", [], [])),
     "not supported"),
    (helper.make_node("Identity", ["X"], ["Y"], body=helper.make_graph([], "b", [], [])),
     "subgraph"),
    (helper.make_node("Loop", ["m", "c"], ["Y"]), "'Loop' is not supported"),
    (helper.make_node("Relu", ["X"], ["Y"], name="x" * 100000), r"'Relu' is not supported"),
])
def test_other_operators(node, match):
    refused(graph_bytes([node], [x_input()], [out()]), match)


def test_old_opsets_and_no_opset():
    refused(graph_bytes([lstm()], [x_input()], [out()], W_OK, opset=6), "opset 6")
    model = onnx.load_from_string(graph_bytes([lstm()], [x_input()], [out()], W_OK))
    del model.opset_import[:]
    refused(model.SerializeToString(), "imports no version")


def test_duplicate_initializers_and_inputs():
    model = onnx.load_from_string(graph_bytes([lstm()], [x_input()], [out()], W_OK))
    model.graph.initializer.append(model.graph.initializer[0])
    refused(model.SerializeToString(), "two initializers are named 'W'")
    model = onnx.load_from_string(graph_bytes([lstm()], [x_input(), x_input()], [out()], W_OK))
    refused(model.SerializeToString(), "same name")


def test_two_data_inputs_and_bad_lengths():
    data = graph_bytes([lstm(("X", "W", "R")), lstm(("X2", "W", "R"), ("Y2",))],
                       [x_input(), helper.make_tensor_value_info("X2", F32, ["T", "B", 3])],
                       [out(), out("Y2")], W_OK)
    refused(data, "two data inputs")
    data = graph_bytes([lstm(("X", "W", "R", "", "L"))],
                       [x_input(), helper.make_tensor_value_info("L", F32, ["B"])],
                       [out()], W_OK)
    refused(data, "sequence_lens, which must be int32")


# -- external data ---------------------------------------------------------------------
def external_model(folder, location, *, offset=None, length=None, extra=None):
    """A one-node LSTM whose W lives in `location` (relative to the model)."""
    tensor = numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(1, 8, 3) / 24,
                                     "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    entries.update(extra or {})
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = folder / "model.onnx"
    path.write_bytes(graph_bytes([lstm()], [x_input()], [out()], {"R": W_OK["R"]},
                                 tensors=[tensor]))
    return path


W_BYTES = (np.arange(24, dtype=np.float32) / 24).tobytes()


@pytest.fixture
def opened(monkeypatch):
    """Every path opened through open() while the test runs."""
    paths = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            paths.append(os.path.realpath(os.fsdecode(file)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    return paths


def test_external_data_inside_the_folder(tmp_path, opened):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.bin").write_bytes(b"pad!" + W_BYTES)
    path = external_model(tmp_path, "data/w.bin", offset=4, length=len(W_BYTES))
    refused(path, r"external file; .*external_data=True")
    layer = co.load(path, external_data=True)
    np.testing.assert_array_equal(layer.state_dict()["weight_ih_l0"][[0, 1]],
                                  np.arange(24, dtype=np.float32).reshape(8, 3)[[0, 1]] / 24)
    root = os.path.realpath(tmp_path)
    assert opened and all(p.startswith(root + os.sep) for p in opened)


@pytest.mark.parametrize("location, match", [
    ("../outside.bin", "leaves the model's folder"),
    ("data/../../outside.bin", "leaves the model's folder"),
    ("/etc/passwd", "absolute path"),
    ("link.bin", "resolves outside the model's folder"),
    ("missing.bin", "cannot be read"),
    ("data", "cannot be read|not a regular file"),
    ("", "no valid location"),
])
def test_external_data_outside_the_folder(tmp_path, opened, location, match):
    folder = tmp_path / "model"
    (folder / "data").mkdir(parents=True)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(W_BYTES)
    (folder / "link.bin").symlink_to(outside)
    path = external_model(folder, location)
    refused(path, match, external_data=True)
    assert os.path.realpath(outside) not in opened
    assert "/etc/passwd" not in opened
    assert all(p.startswith(os.path.realpath(folder) + os.sep) for p in opened)


@pytest.mark.parametrize("kwargs, match", [
    ({"offset": len(W_BYTES)}, "needs bytes"),
    ({"length": 12}, "length is '12' bytes"),
    ({"offset": "-4"}, "offset must be a non-negative integer"),
    ({"extra": {"checksum": "0", "shell": "rm -rf"}}, "unknown keys"),
])
def test_external_data_that_lies(tmp_path, kwargs, match):
    (tmp_path / "w.bin").write_bytes(W_BYTES)
    refused(external_model(tmp_path, "w.bin", **kwargs), match, external_data=True)


def test_external_data_needs_a_folder(tmp_path):
    (tmp_path / "w.bin").write_bytes(W_BYTES)
    data = external_model(tmp_path, "w.bin").read_bytes()
    refused(data, "not read from a path", external_data=True)
    refused(data, "external_data=True")


def test_nothing_outside_the_folder_for_a_normal_model(tmp_path, opened):
    path = tmp_path / "m.onnx"
    path.write_bytes(VALID)
    co.load(path)
    assert opened == [os.path.realpath(path)]


def test_a_split_of_a_shape_is_refused_as_such():
    """(Found by fuzzing: it escaped as an AttributeError.)"""
    model = onnx.load_from_string(cyrnn.onnx.export(cyrnn.LSTM(3, 4, seed=0)))
    model.graph.node.extend([
        onnx.helper.make_node("Shape", ["x"], ["shape_"]),
        onnx.helper.make_node("Split", ["shape_"], ["a_", "b_", "c_"], axis=0, num_outputs=3)])
    with pytest.raises(ValueError, match=r"Split .*splits a shape"):
        cyrnn.onnx.load(model.SerializeToString())
