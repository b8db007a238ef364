"""Bad input raises ValueError or TypeError naming the argument (and the
expected shape) before any C code runs."""
import numpy as np
import pytest

import cyrnn
from helpers import make_model

T, B, I, H = 5, 3, 4, 6


def lstm(**kw):
    return cyrnn.LSTM(I, H, num_layers=2, **kw)


X = np.zeros((T, B, I))
H0 = np.zeros((2, B, H))
CONSTRUCTOR_CASES = [
    (lambda: cyrnn.LSTM(0, H), ValueError, "input_size"),
    (lambda: cyrnn.LSTM(I, -1), ValueError, "hidden_size"),
    (lambda: cyrnn.LSTM(I, 2.5), TypeError, "hidden_size"),
    (lambda: cyrnn.LSTM(I, True), TypeError, "hidden_size"),
    (lambda: cyrnn.GRU(I, H, num_layers=0), ValueError, "num_layers"),
    (lambda: cyrnn.RNN(I, H, num_layers="2"), TypeError, "num_layers"),
    (lambda: cyrnn.LSTM(I, H, dropout=1.0), ValueError, "dropout"),
    (lambda: cyrnn.LSTM(I, H, dropout=-0.1), ValueError, "dropout"),
    (lambda: cyrnn.LSTM(I, H, dropout="0.1"), TypeError, "dropout"),
    (lambda: cyrnn.LSTM(I, H, proj_size=H), ValueError, "proj_size"),
    (lambda: cyrnn.LSTM(I, H, proj_size=-1), ValueError, "proj_size"),
    (lambda: cyrnn.RNN(I, H, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (lambda: cyrnn.RNN(I, H, nonlinearity=None), ValueError, "nonlinearity"),
    (lambda: cyrnn.LSTM(I, H, dtype=np.float16), ValueError, "dtype"),
    (lambda: cyrnn.GRU(I, H, dtype=np.int32), ValueError, "dtype"),
    (lambda: cyrnn.GRU(I, H, dtype="no such type"), TypeError, "dtype"),
    (lambda: cyrnn.LSTM(I, H, bias="yes"), TypeError, "bias"),
    (lambda: cyrnn.LSTM(I, H, bidirectional=1), TypeError, "bidirectional"),
    (lambda: cyrnn.LSTM(I, H, batch_first=None), TypeError, "batch_first"),
    (lambda: cyrnn.LSTM(I, H, seed=-3), TypeError, "seed"),
    (lambda: cyrnn.LSTM(I, H, flavour="x"), TypeError, "flavour"),
    (lambda: cyrnn.GRU(I, H, proj_size=2), TypeError, "proj_size"),
    (lambda: cyrnn.LSTM(I, H, nonlinearity="tanh"), TypeError, "nonlinearity"),
]


@pytest.mark.parametrize("build,error,name", CONSTRUCTOR_CASES,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(CONSTRUCTOR_CASES)])
def test_constructor_rejects(build, error, name):
    with pytest.raises(error, match=name):
        build()


CALL_CASES = [
    # (what is wrong, call on model m, error, words the message must contain)
    ("rank 1", lambda m: m(np.zeros(I)), ValueError, ["x", "shape"]),
    ("rank 4", lambda m: m(np.zeros((T, B, I, 1))), ValueError, ["x", "(T, B, input_size)"]),
    ("feature size", lambda m: m(np.zeros((T, B, I + 1))), ValueError, ["x", f"input_size={I}"]),
    ("empty time axis", lambda m: m(np.zeros((0, B, I))), ValueError, ["x", "time step"]),
    ("empty batch", lambda m: m(np.zeros((T, 0, I))), ValueError, ["x"]),
    ("complex", lambda m: m(np.zeros((T, B, I), complex)), TypeError, ["x", "complex"]),
    ("object", lambda m: m(np.array([[["a"] * I] * B] * T, dtype=object)), TypeError, ["x"]),
    ("strings", lambda m: m([["ab"]]), TypeError, ["x"]),
    ("ragged list", lambda m: m([[1.0, 2.0], [1.0]]), TypeError, ["x"]),
    ("hx not a pair", lambda m: m(X, H0), TypeError, ["hx", "pair"]),
    ("hx triple", lambda m: m(X, (H0, H0, H0)), TypeError, ["hx", "pair"]),
    ("h0 shape", lambda m: m(X, (np.zeros((1, B, H)), H0)), ValueError, ["hx[0]", str((2, B, H))]),
    ("c0 shape", lambda m: m(X, (H0, np.zeros((2, B + 1, H)))), ValueError, ["hx[1]", str((2, B, H))]),
    ("h0 complex", lambda m: m(X, (H0.astype(complex), H0)), TypeError, ["hx[0]"]),
    ("lengths float", lambda m: m(X, lengths=np.array([1.0, 2.0, 3.0])), TypeError, ["lengths", "integer"]),
    ("lengths count", lambda m: m(X, lengths=np.array([1, 2])), ValueError, ["lengths", f"({B},)"]),
    ("lengths zero", lambda m: m(X, lengths=np.array([0, 2, 3])), ValueError, ["lengths", f"[1, {T}]"]),
    ("lengths too long", lambda m: m(X, lengths=np.array([1, 2, T + 1])), ValueError, ["lengths", f"[1, {T}]"]),
    ("lengths unbatched", lambda m: m(X[:, 0], lengths=np.array([2])), ValueError, ["lengths", "unbatched"]),
    ("lengths 2-D", lambda m: m(X, lengths=np.ones((B, 1), int)), ValueError, ["lengths"]),
    ("unknown keyword", lambda m: m(X, mask=None), TypeError, ["mask"]),
    ("forward keyword", lambda m: m.forward(X, lenghts=[1, 2, 3]), TypeError, ["lenghts"]),
]


@pytest.mark.parametrize("what,call,error,words", CALL_CASES, ids=[c[0] for c in CALL_CASES])
def test_call_rejects(what, call, error, words):
    model = lstm()
    with pytest.raises(error) as info:
        call(model)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("cell", ["GRU", "RNN_TANH"])
def test_single_state_cells_reject_pairs_and_bad_shapes(cell):
    model = make_model(cell, I, H, num_layers=2)
    with pytest.raises(TypeError, match="hx"):
        model(X, (H0, H0))
    with pytest.raises(ValueError, match=r"hx must have shape .*\(2, 3, 6\)"):
        model(X, np.zeros((2, B, H + 1)))
    with pytest.raises(ValueError, match="hx"):
        model(X[:, 0], np.zeros((2, B, H)))  # unbatched x needs unbatched hx


def test_projection_states_have_their_own_widths():
    model = cyrnn.LSTM(I, H, proj_size=2)
    model(X, (np.zeros((1, B, 2)), np.zeros((1, B, H))))
    with pytest.raises(ValueError, match=r"hx\[0\].*\(1, 3, 2\)"):
        model(X, (np.zeros((1, B, H)), np.zeros((1, B, H))))
    with pytest.raises(ValueError, match=r"hx\[1\].*\(1, 3, 6\)"):
        model(X, (np.zeros((1, B, 2)), np.zeros((1, B, 2))))


BACKWARD_CASES = [
    ("not a tape", lambda m, t, y: m.backward({"y": y}, y), TypeError, ["tape"]),
    ("dy shape", lambda m, t, y: m.backward(t, y[:-1]), ValueError, ["dy", str(y_shape := (T, B, H))]),
    ("dy complex", lambda m, t, y: m.backward(t, y.astype(complex)), TypeError, ["dy"]),
    ("dhn not a pair", lambda m, t, y: m.backward(t, y, np.zeros((2, B, H))), TypeError, ["dhn", "pair"]),
    ("dh_n shape", lambda m, t, y: m.backward(t, y, (np.zeros((2, B, H + 1)), None)), ValueError, ["dhn[0]", str((2, B, H))]),
    ("dc_n shape", lambda m, t, y: m.backward(t, y, (None, np.zeros((1, B, H)))), ValueError, ["dhn[1]"]),
]


@pytest.mark.parametrize("what,call,error,words", BACKWARD_CASES, ids=[c[0] for c in BACKWARD_CASES])
def test_backward_rejects(what, call, error, words):
    model = lstm()
    y, _, tape = model.forward(X)
    with pytest.raises(error) as info:
        call(model, tape, y)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_tape_from_another_model_is_rejected():
    first, second = lstm(seed=1), lstm(seed=1)
    y, _, tape = first.forward(X)
    with pytest.raises(ValueError, match="another model"):
        second.backward(tape, y)


def test_tape_is_stale_after_load_state_dict():
    model = lstm(seed=1)
    y, _, tape = model.forward(X)
    model.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="stale"):
        model.backward(tape, y)
    y, _, tape = model.forward(X)  # a fresh tape works again
    assert model.backward(tape, y).input.shape == X.shape


def test_load_state_dict_rejects_and_changes_nothing():
    model = lstm(seed=1)
    before = model.state_dict()
    good = model.state_dict()
    missing = dict(good)
    del missing["bias_hh_l1"]
    extra = dict(good, weight_hr_l0=np.zeros((2, H)))
    wrong = dict(good, weight_hh_l1=np.zeros((4 * H, H + 1)))
    wrong_but_first_ok = dict(good, weight_ih_l0=good["weight_ih_l0"] + 1,
                              bias_ih_l1=np.zeros(3))
    for bad, name in ((missing, "bias_hh_l1"), (extra, "weight_hr_l0"),
                      (wrong, "weight_hh_l1"), (wrong_but_first_ok, "bias_ih_l1")):
        with pytest.raises(ValueError, match=name):
            model.load_state_dict(bad)
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([("weight_ih_l0", good["weight_ih_l0"])])
    with pytest.raises(TypeError, match="weight_ih_l0"):
        model.load_state_dict(dict(good, weight_ih_l0=good["weight_ih_l0"].astype(complex)))
    for key in before:
        np.testing.assert_array_equal(model.state_dict()[key], before[key])
    model.load_state_dict(missing, strict=False)  # non-strict loads what is there


def test_sizes_past_blas_int_are_refused():
    with pytest.raises(ValueError, match="hidden_size"):
        cyrnn.LSTM(I, 2**31)
    model = cyrnn.RNN(1, 1)
    huge = np.broadcast_to(np.zeros((1, 1, 1)), (2**16, 2**15 + 1, 1))  # no memory behind it
    with pytest.raises(ValueError, match="BLAS"):
        model(huge)


@pytest.mark.parametrize("cell", ["GRU", "RNN_RELU"])
def test_single_state_cells_reject_a_pair_of_gradients(cell):
    model = make_model(cell, I, H, num_layers=2)
    y, h_n, tape = model.forward(X)
    with pytest.raises(TypeError, match="dhn must be one array"):
        model.backward(tape, y, (h_n, h_n))
    with pytest.raises(TypeError, match="hx must be one array"):
        model(X, (H0, None))


def test_empty_lengths_is_a_count_error():
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(3,\)"):
        lstm()(X, lengths=[])


def test_dtype_none_means_float32_as_in_torch():
    assert cyrnn.GRU(2, 3, dtype=None).dtype == np.float32
