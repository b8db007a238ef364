"""cyrnn.Embedding: lookups, the row gradient against finite differences and
against a dense scatter, padding_idx, bad ids, and RowGradient in the
optimizers and clipping."""
import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cyrnn
from helpers import finite_difference

V, E = 7, 3


def test_lookup_any_leading_shape():
    emb = cyrnn.Embedding(V, E, seed=0)
    weight = emb.parameters()["weight"]
    for ids in (np.array(4), np.array([1, 2, 1]), np.arange(6).reshape(2, 3),
                np.zeros((2, 1, 3), dtype=np.uint8)):
        y = emb(ids)
        assert y.shape == ids.shape + (E,) and y.dtype == np.float32
        np.testing.assert_array_equal(y, weight[ids])
    np.testing.assert_array_equal(emb([[0, 6]]), weight[[[0, 6]]])


def test_init_is_standard_normal_and_seeded():
    a = cyrnn.Embedding(2000, 8, seed=3).parameters()["weight"]
    b = cyrnn.Embedding(2000, 8, seed=3).parameters()["weight"]
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    emb = cyrnn.Embedding(V, E, dtype=np.float64, seed=1)
    ids = np.array([[1, 4, 1], [6, 4, 1]])
    dy = rng.standard_normal(ids.shape + (E,))
    y, tape = emb.forward(ids)
    g = emb.backward(tape, dy)
    assert g.input is None and g.hx is None
    weight = emb.parameters()["weight"]
    expected = finite_difference(lambda: np.sum(emb(ids) * dy), weight)
    np.testing.assert_allclose(np.asarray(g.params["weight"]), expected, atol=1e-8)


def test_row_gradient_holds_only_the_rows_looked_up():
    emb = cyrnn.Embedding(100_000, 4, seed=0)
    ids = np.array([[5, 99_999, 5], [7, 5, 0]])
    _, tape = emb.forward(ids)
    grad = emb.backward(tape, np.ones(ids.shape + (4,), np.float32)).params["weight"]
    assert isinstance(grad, cyrnn.RowGradient)
    np.testing.assert_array_equal(grad.indices, [0, 5, 7, 99_999])
    np.testing.assert_array_equal(grad.values[:, 0], [1, 3, 1, 1])
    assert grad.shape == (100_000, 4) and grad.dtype == np.float32


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), vocab=st.integers(1, 9),
       padding=st.booleans(), seed=st.integers(0, 2**16))
def test_row_gradient_equals_dense_scatter(shape, vocab, padding, seed):
    rng = np.random.default_rng(seed)
    emb = cyrnn.Embedding(vocab, 2, padding_idx=0 if padding else None, dtype=np.float64)
    ids = rng.integers(0, vocab, shape)
    dy = rng.standard_normal(tuple(shape) + (2,))
    _, tape = emb.forward(ids)
    grad = emb.backward(tape, dy).params["weight"]
    dense = np.zeros((vocab, 2))
    np.add.at(dense, ids.ravel(), dy.reshape(-1, 2))
    if padding:
        dense[0] = 0
    np.testing.assert_allclose(grad.toarray(), dense, rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(grad.indices) > 0)


def test_padding_idx_starts_at_zero_and_gets_no_gradient():
    emb = cyrnn.Embedding(V, E, padding_idx=-2, seed=0)
    assert emb.padding_idx == V - 2
    np.testing.assert_array_equal(emb.parameters()["weight"][V - 2], 0)
    _, tape = emb.forward(np.array([V - 2, 1, V - 2]))
    grad = emb.backward(tape, np.ones((3, E), np.float32)).params["weight"]
    np.testing.assert_array_equal(grad.indices, [1])
    assert "padding_idx=5" in repr(emb)


@pytest.mark.parametrize("make, error, words", [
    (lambda e: e(np.array([0.0, 1.0])), TypeError, ["x", "integer ids", "float64"]),
    (lambda e: e(np.array([True])), TypeError, ["x", "integer ids"]),
    (lambda e: e(np.array([0, V])), ValueError, ["x", f"id {V}", f"[0, {V})"]),
    (lambda e: e(np.array([-1, 2])), ValueError, ["x", "id -1"]),
    (lambda e: e("abc"), TypeError, ["x"]),
    (lambda e: cyrnn.Embedding(V, E, padding_idx=V), ValueError, ["padding_idx"]),
    (lambda e: cyrnn.Embedding(V, E, padding_idx=-V - 1), ValueError, ["padding_idx"]),
    (lambda e: cyrnn.Embedding(0, E), ValueError, ["num_embeddings"]),
    (lambda e: cyrnn.Embedding(V, 2.0), TypeError, ["embedding_dim"]),
    (lambda e: cyrnn.Embedding(V, E, dtype=np.int32), ValueError, ["dtype"]),
    (lambda e: e.backward(e.forward([1])[1], np.ones((2, E))), ValueError, ["dy", "(1, 3)"]),
    (lambda e: e.backward(cyrnn.Embedding(V, E).forward([1])[1], np.ones((1, E))),
     ValueError, ["another Embedding"]),
])
def test_bad_input_is_named(make, error, words):
    emb = cyrnn.Embedding(V, E, seed=0)
    with pytest.raises(error) as info:
        make(emb)
    for word in words:
        assert word in str(info.value)


def test_tape_keeps_its_own_ids():
    emb = cyrnn.Embedding(V, E, seed=0)
    ids = np.array([1, 2])
    _, tape = emb.forward(ids)
    ids[:] = 5
    grad = emb.backward(tape, np.ones((2, E), np.float32)).params["weight"]
    np.testing.assert_array_equal(grad.indices, [1, 2])


def sparse_and_dense_grads(seed=0):
    rng = np.random.default_rng(seed)
    emb = cyrnn.Embedding(50, 4, dtype=np.float64, seed=seed)
    ids = rng.integers(0, 50, (6, 3))
    _, tape = emb.forward(ids)
    sparse = emb.backward(tape, rng.standard_normal((6, 3, 4))).params["weight"]
    return emb, sparse, sparse.toarray()


@pytest.mark.parametrize("make_optimizer", [
    lambda p: cyrnn.optim.SGD(p, lr=0.5),
    lambda p: cyrnn.optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=0.01),
    lambda p: cyrnn.optim.Adam(p, lr=0.1),
    lambda p: cyrnn.optim.AdamW(p, lr=0.1),
])
def test_optimizers_take_a_row_gradient_as_its_dense_array(make_optimizer):
    emb, sparse, dense = sparse_and_dense_grads()
    twin = cyrnn.Embedding(50, 4, dtype=np.float64)
    twin.load_state_dict(emb.state_dict())
    a, b = make_optimizer(emb.parameters()), make_optimizer(twin.parameters())
    for _ in range(3):
        a.step({"weight": sparse})
        b.step({"weight": dense})
    np.testing.assert_array_equal(emb.parameters()["weight"], twin.parameters()["weight"])


def test_clipping_takes_a_row_gradient():
    _, sparse, dense = sparse_and_dense_grads()
    total = cyrnn.optim.clip_grad_norm({"weight": sparse}, 0.5)
    assert total == pytest.approx(np.linalg.norm(dense))
    assert np.linalg.norm(sparse.toarray()) == pytest.approx(0.5, rel=1e-5)
    cyrnn.optim.clip_grad_value({"weight": sparse}, 0.01)
    assert np.abs(sparse.values).max() <= 0.01


FIXTURES = sorted((pathlib.Path(__file__).parent / "data" / "layers").glob("embedding_*.npz"))


def test_torch_fixtures_are_there():
    assert len(FIXTURES) == 8


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_against_torch(path):
    """torch.nn.Embedding's output and (dense) table gradient, written by
    tools/make_layer_fixtures.py."""
    with np.load(path, allow_pickle=False) as data:
        case = {k: data[k] for k in data.files}
    config = json.loads(str(case.pop("config")))
    emb = cyrnn.Embedding(config["num_embeddings"], config["embedding_dim"],
                          padding_idx=config.get("padding_idx"), dtype=config["dtype"])
    emb.load_state_dict({"weight": case["weight"]})
    np.testing.assert_array_equal(emb(case["ids"]), case["y"])
    y, tape = emb.forward(case["ids"])
    grad = emb.backward(tape, case["dy"]).params["weight"]
    rtol = 1e-6 if config["dtype"] == "float32" else 1e-13
    np.testing.assert_allclose(grad.toarray(), case["grad_weight"], rtol=rtol, atol=rtol)
