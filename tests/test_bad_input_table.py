"""Bad input, table-driven over every class (LSTM, GRU, RNN): each case must
raise the stated exception type with a message that names the offending
argument (and, where there is one, the expected shape or range), before any
C code runs. Complements test_errors.py, which covers mostly LSTM."""
import numpy as np
import pytest

import cyrnn

T, B, I, H, L = 5, 3, 4, 6, 2
CLASSES = {"LSTM": cyrnn.LSTM, "GRU": cyrnn.GRU, "RNN": cyrnn.RNN}
X = np.zeros((T, B, I))
SHAPE = str((L, B, H))  # (num_layers * num_directions, B, H) of this table's models


def model(cls, **options):
    return cls(I, H, num_layers=L, seed=0, **options)


def state(cls, array):
    """An LSTM takes (h0, c0); the others one array."""
    return (array, np.zeros((L, B, H))) if cls is cyrnn.LSTM else array


def trained(cls, **options):
    m = model(cls, **options)
    y, hn, tape = m.forward(X)
    return m, y, tape


def backward_with(cls, dy=None, dhn=None, tape=None):
    m, y, own_tape = trained(cls)
    return m.backward(own_tape if tape is None else tape, y if dy is None else dy, dhn)


def backward_with_keyword(cls, **keyword):
    m, y, tape = trained(cls)
    return m.backward(tape, y, **keyword)


def stale(cls):
    m, y, tape = trained(cls)
    m.load_state_dict(m.state_dict())
    return m.backward(tape, y)


def stale_partial(cls):
    m, y, tape = trained(cls)
    m.load_state_dict({"weight_hh_l1": m.state_dict()["weight_hh_l1"]}, strict=False)
    return m.backward(tape, y)


def other_class_tape(cls):
    other = cyrnn.GRU if cls is not cyrnn.GRU else cyrnn.RNN
    _, y, tape = trained(other)
    return model(cls).backward(tape, y)


def forward_result_as_tape(cls):
    m = model(cls)
    result = m.forward(X)
    return m.backward(result, result[0])


def only(names, call):
    """Marks a case as applying to some of the classes only."""
    call.only = names.split()
    return call


# (case id, the call given the class, expected exception, words the message must contain)
CASES = [
    # -- the model's dtype
    ("dtype float16", lambda c: model(c, dtype=np.float16), ValueError, ["dtype", "float16"]),
    ("dtype 'float16'", lambda c: model(c, dtype="float16"), ValueError, ["dtype", "float16"]),
    ("dtype int32", lambda c: model(c, dtype=np.int32), ValueError, ["dtype", "int32"]),
    ("dtype complex64", lambda c: model(c, dtype=np.complex64), ValueError, ["dtype", "complex64"]),
    ("dtype longdouble", lambda c: model(c, dtype=np.longdouble), ValueError, ["dtype"]),
    ("dtype object", lambda c: model(c, dtype=object), ValueError, ["dtype"]),
    ("dtype unknown name", lambda c: model(c, dtype="float99"), TypeError, ["dtype"]),
    # -- sizes
    ("input_size 0", lambda c: c(0, H), ValueError, ["input_size", ">= 1"]),
    ("input_size -3", lambda c: c(-3, H), ValueError, ["input_size", ">= 1"]),
    ("hidden_size 0", lambda c: c(I, 0), ValueError, ["hidden_size", ">= 1"]),
    ("hidden_size -1", lambda c: c(I, -1), ValueError, ["hidden_size"]),
    ("num_layers 0", lambda c: c(I, H, 0), ValueError, ["num_layers", ">= 1"]),
    ("num_layers -2", lambda c: c(I, H, num_layers=-2), ValueError, ["num_layers"]),
    ("input_size 2.0", lambda c: c(2.0, H), TypeError, ["input_size", "integer"]),
    ("input_size '4'", lambda c: c("4", H), TypeError, ["input_size"]),
    ("input_size None", lambda c: c(None, H), TypeError, ["input_size"]),
    ("hidden_size 6.5", lambda c: c(I, 6.5), TypeError, ["hidden_size", "integer"]),
    ("hidden_size np.float64", lambda c: c(I, np.float64(6)), TypeError, ["hidden_size"]),
    ("hidden_size True", lambda c: c(I, True), TypeError, ["hidden_size"]),
    ("num_layers 1.0", lambda c: c(I, H, 1.0), TypeError, ["num_layers", "integer"]),
    ("num_layers array", lambda c: c(I, H, np.array([2])), TypeError, ["num_layers"]),
    # -- dropout
    ("dropout 1", lambda c: model(c, dropout=1), ValueError, ["dropout", "[0, 1)"]),
    ("dropout 1.5", lambda c: model(c, dropout=1.5), ValueError, ["dropout", "[0, 1)"]),
    ("dropout -0.5", lambda c: model(c, dropout=-0.5), ValueError, ["dropout", "[0, 1)"]),
    ("dropout nan", lambda c: model(c, dropout=float("nan")), ValueError, ["dropout"]),
    ("dropout inf", lambda c: model(c, dropout=float("inf")), ValueError, ["dropout"]),
    ("dropout None", lambda c: model(c, dropout=None), TypeError, ["dropout"]),
    ("dropout '0.2'", lambda c: model(c, dropout="0.2"), TypeError, ["dropout"]),
    ("dropout True", lambda c: model(c, dropout=True), TypeError, ["dropout"]),
    # -- projections: LSTM only, smaller than hidden_size
    ("proj_size == hidden_size",
     only("LSTM", lambda c: model(c, proj_size=H)),
     ValueError, ["proj_size", "hidden_size"]),
    ("proj_size > hidden_size",
     only("LSTM", lambda c: model(c, proj_size=H + 3)),
     ValueError, ["proj_size", "hidden_size"]),
    ("proj_size -1", only("LSTM", lambda c: model(c, proj_size=-1)),
     ValueError, ["proj_size"]),
    ("proj_size 2.0", only("LSTM", lambda c: model(c, proj_size=2.0)),
     TypeError, ["proj_size"]),
    ("proj_size on GRU/RNN",
     only("GRU RNN", lambda c: model(c, proj_size=2)),
     TypeError, ["proj_size"]),
    # -- peepholes: LSTM only, a bool
    ("peephole 1", only("LSTM", lambda c: model(c, peephole=1)), TypeError, ["peephole"]),
    ("peephole 'yes'", only("LSTM", lambda c: model(c, peephole="yes")), TypeError,
     ["peephole"]),
    ("peephole on GRU/RNN", only("GRU RNN", lambda c: model(c, peephole=True)), TypeError,
     ["peephole"]),
    # -- reset_after: GRU only, a bool
    ("reset_after 0", only("GRU", lambda c: model(c, reset_after=0)), TypeError,
     ["reset_after"]),
    ("reset_after on LSTM/RNN", only("LSTM RNN", lambda c: model(c, reset_after=False)),
     TypeError, ["reset_after"]),
    # -- nonlinearity: RNN only, 'tanh' or 'relu'
    ("nonlinearity 'sigmoid'",
     only("RNN", lambda c: model(c, nonlinearity="sigmoid")),
     ValueError, ["nonlinearity", "tanh", "relu"]),
    ("nonlinearity 'ReLU'",
     only("RNN", lambda c: model(c, nonlinearity="ReLU")),
     ValueError, ["nonlinearity"]),
    ("nonlinearity None",
     only("RNN", lambda c: model(c, nonlinearity=None)),
     ValueError, ["nonlinearity"]),
    ("nonlinearity on LSTM/GRU",
     only("LSTM GRU", lambda c: model(c, nonlinearity="tanh")),
     TypeError, ["nonlinearity"]),
    # -- unknown keywords, everywhere
    ("unknown constructor keyword", lambda c: model(c, hidden=3), TypeError, ["hidden"]),
    ("torch's device keyword", lambda c: model(c, device="cpu"), TypeError, ["device"]),
    ("unknown call keyword", lambda c: model(c)(X, mask=None), TypeError, ["mask"]),
    ("unknown forward keyword", lambda c: model(c).forward(X, length=[1, 2, 3]), TypeError,
     ["length"]),
    ("unknown backward keyword", lambda c: backward_with_keyword(c, dh=None), TypeError, ["dh"]),
    ("input_grad not a bool", lambda c: backward_with_keyword(c, input_grad="no"), TypeError,
     ["input_grad", "True or False"]),
    # -- hx of the wrong type
    ("hx complex", lambda c: model(c)(X, state(c, np.zeros((L, B, H), complex))), TypeError,
     ["hx", "complex"]),
    ("hx object", lambda c: model(c)(X, state(c, np.full((L, B, H), None))), TypeError,
     ["hx", "object"]),
    ("hx object of floats", lambda c: model(c)(X, state(c, np.zeros((L, B, H)).astype(object))),
     TypeError, ["hx", "object"]),
    ("hx strings", lambda c: model(c)(X, state(c, np.full((L, B, H), "0.5"))), TypeError, ["hx"]),
    ("hx one string", lambda c: model(c)(X, "zeros"), TypeError, ["hx"]),
    ("hx ragged list", lambda c: model(c)(X, state(c, [[[0.0] * H] * B, [[0.0] * H]])),
     TypeError, ["hx"]),
    # -- hx with the wrong count of layers (or directions)
    ("hx one layer", lambda c: model(c)(X, state(c, np.zeros((1, B, H)))), ValueError,
     ["hx", SHAPE, "num_layers"]),
    ("hx three layers", lambda c: model(c)(X, state(c, np.zeros((3, B, H)))), ValueError,
     ["hx", SHAPE]),
    ("hx without its layer axis", lambda c: model(c)(X, state(c, np.zeros((B, H)))), ValueError,
     ["hx", SHAPE]),
    ("hx one direction of two",
     lambda c: model(c, bidirectional=True)(X, (np.zeros((L, B, H)), np.zeros((2 * L, B, H)))
                                            if c is cyrnn.LSTM else np.zeros((L, B, H))),
     ValueError, ["hx", str((2 * L, B, H))]),
    ("LSTM c0 with one layer",
     only("LSTM", lambda c: model(c)(X, (np.zeros((L, B, H)), np.zeros((1, B, H))))),
     ValueError, ["hx[1]", SHAPE]),
    # -- lengths
    ("lengths too few", lambda c: model(c)(X, lengths=[T, 1]), ValueError, ["lengths", f"({B},)"]),
    ("lengths too many", lambda c: model(c)(X, lengths=[T, 1, 2, 3]), ValueError,
     ["lengths", f"({B},)"]),
    ("lengths scalar", lambda c: model(c)(X, lengths=T), ValueError, ["lengths", f"({B},)"]),
    ("lengths (B, 1)", lambda c: model(c)(X, lengths=np.full((B, 1), T)), ValueError,
     ["lengths", f"({B},)"]),
    ("lengths (1, B)", lambda c: model(c)(X, lengths=np.full((1, B), T)), ValueError,
     ["lengths", f"({B},)"]),
    ("lengths floats", lambda c: model(c)(X, lengths=np.array([5.0, 2.0, 1.0])), TypeError,
     ["lengths", "integer"]),
    ("lengths list with a float", lambda c: model(c)(X, lengths=[5, 2, 1.5]), TypeError,
     ["lengths", "integer"]),
    ("lengths bools", lambda c: model(c)(X, lengths=np.ones(B, bool)), TypeError,
     ["lengths", "integer"]),
    ("lengths strings", lambda c: model(c)(X, lengths=["5", "2", "1"]), TypeError,
     ["lengths", "integer"]),
    ("lengths with None", lambda c: model(c)(X, lengths=[5, None, 1]), TypeError, ["lengths"]),
    ("lengths complex", lambda c: model(c)(X, lengths=np.array([5, 2, 1], complex)), TypeError,
     ["lengths"]),
    ("lengths zero", lambda c: model(c)(X, lengths=[5, 0, 1]), ValueError,
     ["lengths", f"[1, {T}]"]),
    ("lengths negative", lambda c: model(c)(X, lengths=np.array([5, -2, 1], np.int16)), ValueError,
     ["lengths", f"[1, {T}]"]),
    ("lengths past T", lambda c: model(c)(X, lengths=[T + 1, 2, 1]), ValueError,
     ["lengths", f"[1, {T}]"]),
    ("lengths uint8 past T", lambda c: model(c)(X, lengths=np.array([255, 2, 1], np.uint8)),
     ValueError, ["lengths", f"[1, {T}]"]),
    ("lengths huge", lambda c: model(c)(X, lengths=np.array([2**40, 2, 1])), ValueError,
     ["lengths", f"[1, {T}]"]),
    ("lengths in forward", lambda c: model(c).forward(X, lengths=[T, 0, 1]), ValueError,
     ["lengths"]),
    # -- tapes
    ("tape stale after load_state_dict", stale, ValueError, ["tape", "stale"]),
    ("tape stale after a partial load_state_dict", stale_partial, ValueError, ["tape", "stale"]),
    ("tape None", lambda c: model(c).backward(None, np.zeros((T, B, H))), TypeError, ["tape"]),
    ("tape a dict", lambda c: model(c).backward({"y": X}, np.zeros((T, B, H))), TypeError,
     ["tape"]),
    ("tape the whole forward result", forward_result_as_tape, TypeError, ["tape"]),
    ("tape an array", lambda c: model(c).backward(np.zeros((T, B, H)), np.zeros((T, B, H))),
     TypeError, ["tape"]),
    ("tape of another class", other_class_tape, ValueError, ["tape", "another model"]),
    # -- dy
    ("dy one step short", lambda c: backward_with(c, dy=np.zeros((T - 1, B, H))), ValueError,
     ["dy", str((T, B, H))]),
    ("dy too wide", lambda c: backward_with(c, dy=np.zeros((T, B, H + 1))), ValueError,
     ["dy", str((T, B, H))]),
    ("dy batch-first", lambda c: backward_with(c, dy=np.zeros((B, T, H))), ValueError,
     ["dy", str((T, B, H))]),
    ("dy flattened", lambda c: backward_with(c, dy=np.zeros((T, B * H))), ValueError,
     ["dy", str((T, B, H))]),
    ("dy scalar", lambda c: backward_with(c, dy=1.0), ValueError, ["dy", str((T, B, H))]),
    ("dy None", lambda c: backward_with(c, dy=np.array(None)), TypeError, ["dy"]),
    ("dy complex", lambda c: backward_with(c, dy=np.zeros((T, B, H), complex)), TypeError,
     ["dy", "complex"]),
    ("dy strings", lambda c: backward_with(c, dy=np.full((T, B, H), "1")), TypeError, ["dy"]),
    # -- dhn, per cell
    ("dhn one layer",
     lambda c: backward_with(c, dhn=state(c, np.zeros((1, B, H)))), ValueError,
     ["dhn", SHAPE]),
    ("dhn wrong batch",
     lambda c: backward_with(c, dhn=state(c, np.zeros((L, B + 1, H)))), ValueError,
     ["dhn", SHAPE]),
    ("dhn wrong width",
     lambda c: backward_with(c, dhn=state(c, np.zeros((L, B, H - 1)))), ValueError,
     ["dhn", SHAPE]),
    ("dhn complex", lambda c: backward_with(c, dhn=state(c, np.zeros((L, B, H), complex))),
     TypeError, ["dhn", "complex"]),
    ("dhn a pair for GRU/RNN",
     only("GRU RNN", lambda c: backward_with(c, dhn=(np.zeros((L, B, H)), np.zeros((L, B, H))))),
     TypeError, ["dhn", "one array"]),
    ("dhn one array for LSTM",
     only("LSTM", lambda c: backward_with(c, dhn=np.zeros((L, B, H)))),
     TypeError, ["dhn", "pair"]),
    ("LSTM dc_n wrong shape",
     only("LSTM", lambda c: backward_with(c, dhn=(None, np.zeros((L, B, H + 2))))),
     ValueError, ["dhn[1]", SHAPE]),
    # -- unbatched input takes no lengths; load_state_dict's own arguments
    ("lengths with unbatched x", lambda c: model(c)(X[:, 0], lengths=[T]), ValueError,
     ["lengths", "unbatched"]),
    ("load_state_dict strict 'no'",
     lambda c: model(c).load_state_dict(model(c).state_dict(), strict="no"), TypeError, ["strict"]),
    ("load_state_dict entry of strings",
     lambda c: model(c).load_state_dict(dict(model(c).state_dict(), weight_hh_l1="0")), TypeError,
     ["weight_hh_l1"]),
    ("load_state_dict entry of the wrong shape",
     lambda c: model(c).load_state_dict(dict(model(c).state_dict(), bias_ih_l0=np.zeros(H + 1))),
     ValueError, ["bias_ih_l0"]),
]


def table():
    for case_id, call, error, words in CASES:
        for name, cls in CLASSES.items():
            if name in getattr(call, "only", CLASSES):
                yield pytest.param(cls, call, error, words, id=f"{name}-{case_id}")


def test_table_covers_every_class_and_is_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))
    assert {p.values[0] for p in table()} == set(CLASSES.values())


@pytest.mark.parametrize("cls,call,error,words", list(table()))
def test_bad_input_is_refused(cls, call, error, words):
    try:
        result = call(cls)
    except error as exc:
        message = str(exc)
        for word in words:
            assert word in message, f"{word!r} not in the {type(exc).__name__}: {message!r}"
        return
    except Exception as exc:  # the wrong type: report it as such
        pytest.fail(f"expected {error.__name__}, got {type(exc).__name__}: {exc!r}")
    pytest.fail(f"expected {error.__name__}, but the call returned {type(result).__name__}")
