"""cyrnn.save / cyrnn.load: round trips of every model class, and clear
ValueErrors for damaged, tampered or foreign files."""
import io
import json
import zipfile

import numpy as np
import pytest

import cyrnn

MODELS = {
    "LSTM": lambda: cyrnn.LSTM(3, 5, seed=0),
    "LSTM_proj_bidir_layers2_batch_first": lambda: cyrnn.LSTM(
        3, 5, 2, proj_size=2, bidirectional=True, batch_first=True, dropout=0.25,
        dtype=np.float64, seed=1),
    "GRU_no_bias": lambda: cyrnn.GRU(3, 4, bias=False, seed=2),
    "GRU_reset_before_bidir": lambda: cyrnn.GRU(3, 4, bidirectional=True, reset_after=False,
                                                seed=12),
    "GRU_layers3": lambda: cyrnn.GRU(3, 4, 3, dtype=np.float64, seed=3),
    "RNN_relu_bidir": lambda: cyrnn.RNN(3, 4, nonlinearity="relu", bidirectional=True, seed=4),
    "RNN_tanh": lambda: cyrnn.RNN(3, 2, seed=5),
    "Linear": lambda: cyrnn.Linear(3, 7, seed=6),
    "Linear_no_bias_f64": lambda: cyrnn.Linear(3, 2, bias=False, dtype=np.float64, seed=7),
    "LSTM_peephole_proj_bidir": lambda: cyrnn.LSTM(3, 5, proj_size=2, bidirectional=True,
                                                   peephole=True, seed=11),
    "Sequential": lambda: cyrnn.Sequential(cyrnn.LSTM(3, 6, peephole=True, seed=8),
                                           cyrnn.GRU(6, 4, bidirectional=True, seed=9),
                                           cyrnn.Linear(8, 2, seed=10)),
}


def outputs(model, x):
    out = model(x)
    return out if isinstance(out, np.ndarray) else out[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_gives_identical_outputs(tmp_path, name):
    model = MODELS[name]()
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    path = tmp_path / "model.npz"
    cyrnn.save(path, model)
    loaded = cyrnn.load(path)
    assert type(loaded) is type(model)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
        assert loaded.state_dict()[key].dtype == value.dtype


def test_file_objects_and_str_paths(tmp_path):
    model = MODELS["Sequential"]()
    buffer = io.BytesIO()
    cyrnn.save(buffer, model)
    buffer.seek(0)
    loaded = cyrnn.load(buffer)
    x = np.ones((3, 1, 3), np.float32)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
    path = str(tmp_path / "no_suffix")
    cyrnn.save(path, model)                                   # written exactly there
    assert (tmp_path / "no_suffix").exists() and not (tmp_path / "no_suffix.npz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["no_suffix"]   # no temporary left
    with np.load(path, allow_pickle=False) as npz:                  # a plain .npz
        header = json.loads(str(npz["__cyrnn__"][()]))
    assert header["format"] == "cyrnn" and header["format_version"] == cyrnn.serialization.FORMAT_VERSION
    assert header["model"]["class"] == "Sequential"
    assert [layer["class"] for layer in header["model"]["config"]["layers"]] == [
        "LSTM", "GRU", "Linear"]


def test_save_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="model must be a cyrnn"):
        cyrnn.save(tmp_path / "m.npz", object())

    class MyLSTM(cyrnn.LSTM):
        pass
    with pytest.raises(TypeError, match="model must be a cyrnn"):
        cyrnn.save(tmp_path / "m.npz", MyLSTM(2, 3))
    with pytest.raises(TypeError, match="path must be"):
        cyrnn.save(3, cyrnn.Linear(2, 3))
    with pytest.raises(TypeError, match="path must be"):
        cyrnn.load(3)
    with pytest.raises(FileNotFoundError):
        cyrnn.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("model, key", [(cyrnn.LSTM(3, 5, seed=0), "peephole"),
                                        (cyrnn.GRU(3, 5, seed=0), "reset_after")])
def test_a_file_written_before_the_cell_variants_loads_the_plain_cell(tmp_path, model, key):
    arrays, header = saved_arrays(model)
    del header["model"]["config"][key]
    write_npz(tmp_path / "old.npz", with_header(arrays, header))
    loaded = cyrnn.load(tmp_path / "old.npz")
    assert repr(loaded) == repr(model)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))


# -- tampered files ------------------------------------------------------------
def write_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def saved_arrays(model):
    buffer = io.BytesIO()
    cyrnn.save(buffer, model)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["__cyrnn__"][()]))
    return arrays, header


def with_header(arrays, header):
    return dict(arrays, __cyrnn__=np.array(json.dumps(header)))


def tampered_cases():
    arrays, header = saved_arrays(cyrnn.Sequential(cyrnn.LSTM(3, 4, seed=0),
                                                   cyrnn.Linear(4, 2, seed=1)))
    cases = {}
    h = json.loads(json.dumps(header))
    h["format_version"] = 99
    cases["newer version"] = (with_header(arrays, h), "format version 99.*upgrade cyrnn")
    h = json.loads(json.dumps(header))
    h["format_version"] = "1"
    cases["version not an int"] = (with_header(arrays, h), "format_version must be an integer")
    h = json.loads(json.dumps(header))
    h["format"] = "keras"
    cases["foreign format"] = (with_header(arrays, h), "format is 'keras'")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][0]["class"] = "Transformer"
    cases["unknown class"] = (with_header(arrays, h), "'Transformer', not one of the known")
    h = json.loads(json.dumps(header))
    h["model"]["class"] = "os.system"
    cases["unknown top class"] = (with_header(arrays, h), "not one of the known classes")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][0]["config"]["hidden_size"] = 4.0
    cases["float size"] = (with_header(arrays, h), "hidden_size must be an integer")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][0]["config"]["bias"] = "yes"
    cases["string bool"] = (with_header(arrays, h), "bias must be True or False")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][0]["config"]["hidden_size"] = 2 ** 40
    cases["huge size"] = (with_header(arrays, h), "describes .* parameter values but it holds")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][0]["config"]["evil"] = 1
    cases["extra config key"] = (with_header(arrays, h), r"unexpected \['evil'\]")
    h = json.loads(json.dumps(header))
    del h["model"]["config"]["layers"][1]["config"]["bias"]
    cases["missing config key"] = (with_header(arrays, h), r"missing \['bias'\]")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][1]["config"]["dtype"] = "object"
    cases["bad dtype"] = (with_header(arrays, h), "dtype'\\] must be one of")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"] = [json.loads(json.dumps(header["model"]))]
    cases["nested Sequential"] = (with_header(arrays, h), "not one of the known classes")
    h = json.loads(json.dumps(header))
    h["model"]["config"]["layers"][1]["config"]["in_features"] = 5
    cases["layers do not chain"] = (with_header(arrays, h), "describes|does not make a valid")
    cases["not JSON"] = (dict(arrays, __cyrnn__=np.array("{not json")), "not valid JSON")
    cases["NaN in JSON"] = (dict(arrays, __cyrnn__=np.array('{"format": NaN}')),
                            "NaN, which is not valid JSON")
    cases["header not a string"] = (dict(arrays, __cyrnn__=np.zeros(3)),
                                    "0-d unicode string array")
    cases["no header"] = ({k: v for k, v in arrays.items() if k != "__cyrnn__"},
                          "no '__cyrnn__' header")
    cases["pickled object array"] = (dict(arrays, **{"1.bias": np.array([{"a": 1}, None],
                                                                         dtype=object)}),
                                     "pickled object array")
    cases["missing weight"] = ({k: v for k, v in arrays.items() if k != "1.bias"},
                               "describes .* parameter values but it holds|missing")
    swapped = dict(arrays)
    swapped["1.bias"], swapped["1.extra"] = np.zeros(2, np.float32), np.zeros(0, np.float32)
    cases["renamed weight"] = (dict(swapped), "missing .*unexpected \\['1.extra'\\]")
    wrong = dict(arrays)
    wrong["1.weight"] = np.zeros((4, 2), np.float32)          # transposed: same count
    cases["wrong shape"] = (wrong, r"state_dict\['1.weight'\] must have shape")
    wrong = dict(arrays)
    wrong["1.weight"] = arrays["1.weight"].astype(np.float64)
    cases["wrong dtype"] = (wrong, "has dtype float64, but the model's dtype is float32")
    wrong = dict(arrays)
    wrong["1.weight"] = arrays["1.weight"].astype(np.int64)
    cases["integer weights"] = (wrong, "weights are float32 or float64")
    return cases


CASES = tampered_cases()


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_file_is_a_clear_value_error(tmp_path, case):
    arrays, message = CASES[case]
    path = tmp_path / "tampered.npz"
    write_npz(path, arrays)
    with pytest.raises(ValueError, match=message):
        cyrnn.load(path)


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "model.npz"
    cyrnn.save(path, cyrnn.LSTM(3, 16, seed=0))
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a cyrnn model file|not a valid cyrnn"):
            cyrnn.load(bad)
    # bytes changed inside a weight: the zip's CRC check catches it
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="cyrnn model file"):
        cyrnn.load(bad)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz"):
        cyrnn.load(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        cyrnn.load(single)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cyrnn model file"):
        cyrnn.load(pickled)
    extra = tmp_path / "extra.npz"
    with zipfile.ZipFile(extra, "w") as z:
        z.writestr("readme.txt", "not an array")
    with pytest.raises(ValueError, match="not a .npy array"):
        cyrnn.load(extra)


def test_member_with_lying_header_is_refused(tmp_path):
    """A .npy header announcing more data than the member holds (the way to
    ask np.load for a huge allocation) is refused before any data is read."""
    path = tmp_path / "model.npz"
    cyrnn.save(path, cyrnn.Linear(2, 3, seed=0))
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    raw = members["weight.npy"]
    assert b"'shape': (3, 2)" in raw
    members["weight.npy"] = raw.replace(b"'shape': (3, 2)", b"'shape': (9, 9)")
    bad = tmp_path / "lying.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    with pytest.raises(ValueError, match="truncated or padded"):
        cyrnn.load(bad)
