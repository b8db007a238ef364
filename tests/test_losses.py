"""cyrnn.losses: values against direct formulas, finite-difference gradients
(with and without lengths, both reductions, batch_first), stability at
+-1e4, masking, dtypes and bad input."""
import numpy as np
import pytest

from cyrnn import losses
from helpers import finite_difference

LOSSES = ["ce", "bce", "mse"]


def make_case(kind, shape, rng, dtype=np.float64):
    """(function, input, targets) for a loss over input of `shape`."""
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "ce":
        return losses.softmax_cross_entropy, x, rng.integers(0, shape[-1], shape[:-1])
    if kind == "bce":
        return losses.binary_cross_entropy_with_logits, x, rng.random(shape)
    return losses.mse, x, rng.standard_normal(shape)


def per_term_reference(kind, x, t):
    """Unreduced loss straight from the textbook formulas (float64)."""
    if kind == "ce":
        p = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
        return -np.log(np.take_along_axis(p, t[..., None], axis=-1))[..., 0]
    if kind == "bce":
        s = 1 / (1 + np.exp(-x))
        return -(t * np.log(s) + (1 - t) * np.log(1 - s))
    return (x - t) ** 2


def sequence_mask(T, B, lengths, batch_first):
    mask = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
    return mask.T if batch_first else mask


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(4, 3, 5), (6, 5), (5,)])
def test_values_and_gradients_without_lengths(kind, reduction, shape):
    rng = np.random.default_rng(0)
    fn, x, t = make_case(kind, shape, rng)
    loss, grad = fn(x, t, reduction=reduction)
    ref = per_term_reference(kind, x, t)
    expected = ref.sum() if reduction == "sum" else ref.mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    assert grad.shape == x.shape and grad.dtype == np.float64
    fd = finite_difference(lambda: fn(x, t, reduction=reduction)[0], x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("trailing", [(), (2,)], ids=["3d", "4d"])
def test_values_and_gradients_with_lengths(kind, reduction, batch_first, trailing):
    rng = np.random.default_rng(1)
    T, B, C = 5, 3, 4
    lengths = np.array([3, 5, 1])
    lead = (B, T) if batch_first else (T, B)
    fn, x, t = make_case(kind, lead + trailing + (C,), rng)
    loss, grad = fn(x, t, lengths=lengths, batch_first=batch_first, reduction=reduction)

    mask = sequence_mask(T, B, lengths, batch_first)
    ref = per_term_reference(kind, x, t)
    counted = np.broadcast_to(mask.reshape(mask.shape + (1,) * (ref.ndim - 2)), ref.shape)
    expected = ref[counted].sum()
    if reduction == "mean":
        # ce: per counted position; bce/mse: per counted element
        expected /= counted.sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)

    fd = finite_difference(lambda: fn(x, t, lengths=lengths, batch_first=batch_first,
                                      reduction=reduction)[0], x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # padded steps: exactly zero gradient
    padded = ~mask
    assert np.all(grad[padded] == 0)
    assert np.any(grad[mask] != 0)


def test_mean_counts_positions_for_ce_and_elements_for_bce_mse():
    T, B, C = 4, 2, 3
    lengths = [4, 2]                         # 6 counted positions, 18 counted elements
    x = np.zeros((T, B, C))
    # ce with uniform logits: log(3) per position -> mean log(3), sum 6 log(3)
    loss, _ = losses.softmax_cross_entropy(x, np.zeros((T, B), int), lengths=lengths)
    np.testing.assert_allclose(loss, np.log(3))
    loss, _ = losses.softmax_cross_entropy(x, np.zeros((T, B), int), lengths=lengths,
                                           reduction="sum")
    np.testing.assert_allclose(loss, 6 * np.log(3))
    # mse with diff 1 everywhere: sum 18, mean 18/18 = 1
    loss, grad = losses.mse(x, np.ones_like(x), lengths=lengths)
    np.testing.assert_allclose(loss, 1.0)
    np.testing.assert_allclose(grad[0, 0], [-2 / 18] * 3)   # d/dx (x-1)^2 / 18 at x=0
    loss, _ = losses.mse(x, np.ones_like(x), lengths=lengths, reduction="sum")
    np.testing.assert_allclose(loss, 18.0)
    # bce at logit 0 with target 1: log(2) per element
    loss, grad = losses.binary_cross_entropy_with_logits(x, np.ones_like(x), lengths=lengths)
    np.testing.assert_allclose(loss, np.log(2))
    np.testing.assert_allclose(grad[0, 0], [-0.5 / 18] * 3)  # (sigmoid(0) - 1) / 18


def test_padding_with_garbage_counts_for_nothing():
    T, B, C = 4, 2, 3
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, C))
    t = rng.integers(0, C, (T, B))
    lengths = np.array([2, 4])
    clean_loss, clean_grad = losses.softmax_cross_entropy(x, t, lengths=lengths)
    dirty, dirty_t = x.copy(), t.copy()
    dirty[2:, 0] = [np.nan, np.inf, -np.inf]
    dirty_t[2:, 0] = -100                     # an "ignore" placeholder, not validated
    loss, grad = losses.softmax_cross_entropy(dirty, dirty_t, lengths=lengths)
    assert loss == clean_loss
    np.testing.assert_array_equal(grad, clean_grad)
    for fn, target in ((losses.binary_cross_entropy_with_logits, np.full((T, B, C), 0.5)),
                       (losses.mse, np.zeros((T, B, C)))):
        clean = fn(x, target, lengths=lengths)
        bad_target = target.copy()
        bad_target[2:, 0] = 7.0               # out of [0, 1] but padded
        dirty_result = fn(dirty, bad_target, lengths=lengths)
        assert dirty_result[0] == clean[0]
        np.testing.assert_array_equal(dirty_result[1], clean[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_large_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype)
    loss, grad = losses.softmax_cross_entropy(z, np.array([1, 2, 0]), reduction="sum")
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # row 0: logsumexp = 1e4, target logit -1e4 -> 2e4; row 1: ~0;
    # row 2: logsumexp = 1e4 + log 2, target 1e4 -> log 2
    np.testing.assert_allclose(loss, 2e4 + np.log(2), rtol=1e-6)
    np.testing.assert_allclose(grad, [[1, -1, 0], [0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)
    assert loss.dtype == dtype and grad.dtype == dtype

    zb = np.array([1e4, -1e4, 1e4, -1e4], dtype)
    tb = np.array([1.0, 0.0, 0.0, 1.0])
    loss, grad = losses.binary_cross_entropy_with_logits(zb, tb, reduction="sum")
    # right with certainty -> 0; confidently wrong -> |z| = 1e4 each
    np.testing.assert_allclose(loss, 2e4, rtol=1e-6)
    np.testing.assert_allclose(grad, [0, 0, 1, -1])
    assert loss.dtype == dtype and grad.dtype == dtype


def test_nan_propagates():
    z = np.array([[0.0, np.nan], [1.0, 2.0]])
    loss, grad = losses.softmax_cross_entropy(z, np.array([0, 1]))
    assert np.isnan(loss) and np.all(np.isnan(grad[0])) and np.all(np.isfinite(grad[1]))
    loss, grad = losses.binary_cross_entropy_with_logits(z, np.zeros((2, 2)))
    assert np.isnan(loss) and np.isnan(grad[0, 1]) and np.isfinite(grad[0, 0])
    loss, grad = losses.mse(z, np.zeros((2, 2)))
    assert np.isnan(loss) and np.isnan(grad[0, 1]) and grad[1, 1] == 1.0


def test_dtypes_follow_the_input():
    t = np.array([0, 1])
    for dtype, expected in ((np.float32, np.float32), (np.float64, np.float64),
                            (np.int64, np.float64), (np.float16, np.float64), (bool, np.float64)):
        z = np.array([[1, 0], [0, 1]], dtype=dtype)
        for fn, target in ((losses.softmax_cross_entropy, t),
                           (losses.binary_cross_entropy_with_logits, np.eye(2)),
                           (losses.mse, np.eye(2))):
            loss, grad = fn(z, target)
            assert loss.dtype == expected and grad.dtype == expected, (fn, dtype)
    # float32 targets against float64 logits and vice versa stay with the logits
    loss, grad = losses.mse(np.zeros(3, np.float32), np.ones(3))
    assert grad.dtype == np.float32


def test_ce_accepts_layouts_and_unsigned_targets():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    ref = losses.softmax_cross_entropy(x, t)
    for xx, tt in ((np.asfortranarray(x), t.astype(np.uint8)),
                   (x.T.copy().T, t[::-1].copy()[::-1]), (x.tolist(), t.tolist())):
        got = losses.softmax_cross_entropy(xx, tt)
        assert got[0] == ref[0]
        np.testing.assert_array_equal(got[1], ref[1])


# -- bad input -------------------------------------------------------------
def test_unknown_reduction():
    for fn, x, t in ((losses.softmax_cross_entropy, np.zeros((2, 3)), np.zeros(2, int)),
                     (losses.binary_cross_entropy_with_logits, np.zeros(2), np.zeros(2)),
                     (losses.mse, np.zeros(2), np.zeros(2))):
        for reduction in ("none", "MEAN", None):
            with pytest.raises(ValueError, match="reduction"):
                fn(x, t, reduction=reduction)


def test_ce_bad_targets():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError) as info:
        losses.softmax_cross_entropy(x, np.array([0, 3]))
    assert "targets" in str(info.value) and "[0, 3)" in str(info.value)
    with pytest.raises(ValueError, match="targets"):
        losses.softmax_cross_entropy(x, np.array([-1, 0]))
    with pytest.raises(TypeError, match="targets"):
        losses.softmax_cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="targets"):
        losses.softmax_cross_entropy(x, np.array([True, False]))
    with pytest.raises(ValueError) as info:
        losses.softmax_cross_entropy(x, np.array([0, 1, 2]))
    assert "targets" in str(info.value) and "(2,)" in str(info.value) and "(3,)" in str(info.value)
    # a padded position may hold anything, a counted one may not
    xs = np.zeros((3, 2, 3))
    t = np.zeros((3, 2), int)
    t[2, 0] = 5
    losses.softmax_cross_entropy(xs, t, lengths=[2, 3])
    with pytest.raises(ValueError, match="targets"):
        losses.softmax_cross_entropy(xs, t, lengths=[3, 3])


def test_ce_bad_logits():
    with pytest.raises(ValueError, match="logits"):
        losses.softmax_cross_entropy(np.float64(1.0), np.int64(0))
    with pytest.raises(ValueError, match="logits"):
        losses.softmax_cross_entropy(np.zeros((2, 0)), np.zeros(2, int))
    with pytest.raises(ValueError, match="logits"):
        losses.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(TypeError, match="logits"):
        losses.softmax_cross_entropy(np.zeros((2, 3), complex), np.zeros(2, int))
    with pytest.raises(TypeError, match="logits"):
        losses.softmax_cross_entropy([["a"]], np.zeros(1, int))


@pytest.mark.parametrize("fn, name", [(losses.binary_cross_entropy_with_logits, "logits"),
                                      (losses.mse, "predictions")])
def test_elementwise_bad_input(fn, name):
    with pytest.raises(ValueError) as info:
        fn(np.zeros((2, 3)), np.zeros((3, 2)))
    assert "targets" in str(info.value) and "(2, 3)" in str(info.value) \
        and "(3, 2)" in str(info.value)
    with pytest.raises(TypeError, match=name):
        fn(np.zeros(2, complex), np.zeros(2))
    with pytest.raises(TypeError, match="targets"):
        fn(np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(ValueError, match=name):
        fn(np.zeros((0, 2)), np.zeros((0, 2)))


def test_bce_targets_out_of_range():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.array([0.0, 1.5, 0.5]))
    with pytest.raises(ValueError, match="targets"):
        losses.binary_cross_entropy_with_logits(np.zeros(3), np.array([-0.1, 1.0, 0.5]))
    loss, grad = losses.binary_cross_entropy_with_logits(np.zeros(2), np.array([np.nan, 1.0]))
    assert np.isnan(loss) and np.isnan(grad[0]) and grad[1] == -0.25


@pytest.mark.parametrize("kind", LOSSES)
def test_bad_lengths(kind):
    rng = np.random.default_rng(4)
    fn, x, t = make_case(kind, (4, 3, 2), rng)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\] = \[1, 4\]"):
        fn(x, t, lengths=[1, 5, 2])
    with pytest.raises(ValueError, match="lengths"):
        fn(x, t, lengths=[0, 2, 2])
    with pytest.raises(ValueError) as info:
        fn(x, t, lengths=[1, 2])
    assert "lengths" in str(info.value) and "(3,)" in str(info.value)
    with pytest.raises(TypeError, match="lengths"):
        fn(x, t, lengths=[1.0, 2.0, 3.0])
    # batch_first swaps the axes: now B=4, T=3
    with pytest.raises(ValueError, match="lengths"):
        fn(x, t, lengths=[1, 2, 3], batch_first=True)
    fn(x, t, lengths=[1, 2, 3, 3], batch_first=True)
    with pytest.raises(TypeError, match="batch_first"):
        fn(x, t, lengths=[1, 2, 3], batch_first=1)


def test_lengths_need_sequence_shaped_input():
    with pytest.raises(ValueError, match="lengths needs sequence-shaped logits"):
        losses.softmax_cross_entropy(np.zeros((4, 3)), np.zeros(4, int), lengths=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="lengths needs sequence-shaped predictions"):
        losses.mse(np.zeros(4), np.zeros(4), lengths=[1])
    # (T, B) is sequence-shaped for the element-wise losses
    loss, grad = losses.mse(np.ones((3, 2)), np.zeros((3, 2)), lengths=[1, 3])
    np.testing.assert_allclose(loss, 1.0)
    np.testing.assert_array_equal(grad, [[0.5, 0.5], [0, 0.5], [0, 0.5]])  # 2*1/4 on counted


def test_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    for kind in LOSSES:
        fn, x, t = make_case(kind, (3, 2, 4), rng)
        x_before, t_before = x.copy(), t.copy()
        x.flags.writeable = False
        fn(x, t, lengths=[1, 3])
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(t, t_before)
