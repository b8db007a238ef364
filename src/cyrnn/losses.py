"""Losses fused with their output activation, for training cyrnn models.

Each function returns ``(loss, dlogits)``: the scalar loss (a numpy scalar of
the computation dtype) and its gradient with respect to the first argument,
of the same shape and dtype, ready to pass to a layer's ``backward`` as
``dy``.

Common arguments
----------------
lengths : integer array of shape (B,), optional
    For sequence-shaped input only: ``(T, B, ...)``, or ``(B, T, ...)`` with
    ``batch_first=True``. Steps ``t >= lengths[b]`` of sequence ``b`` are
    padding: they add nothing to the loss, are not counted by ``"mean"``, and
    their gradient is exactly zero (even if the padding holds NaN or Inf, and
    whatever the targets hold there: padded targets are not validated, so
    they may carry a placeholder such as -1). ``1 <= lengths[b] <= T``.
batch_first : bool
    Where the time axis is when ``lengths`` is given; without ``lengths`` the
    result does not depend on it.
reduction : "mean" or "sum"
    ``"sum"`` adds the loss of every counted term. ``"mean"`` divides that sum
    by the number of counted *positions* for ``softmax_cross_entropy`` (every
    index of ``targets``, as torch.nn.CrossEntropyLoss), and by the number of
    counted *elements* for ``binary_cross_entropy_with_logits`` and ``mse``
    (every entry of the input, as torch.nn.BCEWithLogitsLoss and MSELoss).

Dtypes: float32 and float64 inputs are computed in their own dtype; any other
real input (integers, bools, float16) is computed in float64. Complex or
non-numeric input is a TypeError. NaN in the counted part of the input
propagates into the loss and its gradient.
"""

import numpy as np
from scipy.special import expit

from cyrnn._validation import check_bool, check_shape, real_array

__all__ = ["softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse"]

_REDUCTIONS = ("mean", "sum")


def _as_float(name, value):
    """value as a float32 or float64 ndarray (float32/float64 kept, every
    other real dtype -> float64)."""
    array = real_array(name, value)
    if array.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        array = array.astype(np.float64)
    return array


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


def _sequence_mask(name, shape, lengths, batch_first, min_ndim, layout):
    """For sequence-shaped `shape` (time and batch in the first two axes),
    a boolean mask broadcastable to `shape` that is True on counted steps,
    and the number of counted entries of `shape`. (None, size) without
    lengths."""
    batch_first = check_bool("batch_first", batch_first)
    size = int(np.prod(shape, dtype=np.int64))
    if lengths is None:
        return None, size
    if len(shape) < min_ndim:
        raise ValueError(f"lengths needs sequence-shaped {name}, {layout}; "
                         f"got shape {tuple(shape)}")
    T, B = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array of shape (B,) = ({B},), "
                        f"got dtype {lengths.dtype}")
    check_shape("lengths", lengths, (B,), "(B,)")
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}], "
                         f"got values from {lengths.min()} to {lengths.max()}")
    mask = np.arange(T)[:, None] < lengths[None, :]          # (T, B)
    if batch_first:
        mask = mask.T
    mask = mask.reshape(mask.shape + (1,) * (len(shape) - 2))
    per_step = int(np.prod(shape[2:], dtype=np.int64))
    return mask, int(lengths.sum(dtype=np.int64)) * per_step


def _reduce(per_term, grad, mask, count, reduction, name):
    """Masks, sums and scales the unreduced loss `per_term` and its gradient
    `grad` (modified in place). `mask` broadcasts to per_term's shape; grad
    has per_term's shape or one more trailing axis (the classes)."""
    if count == 0:
        raise ValueError(f"{name} must have at least one element to take a loss over, "
                         f"got shape {grad.shape}")
    dtype = grad.dtype
    if mask is not None:
        per_term = np.where(mask, per_term, 0)
        grad_mask = mask if per_term.ndim == grad.ndim else mask[..., None]
        np.copyto(grad, 0, where=~grad_mask)
    total = per_term.sum(dtype=dtype)
    if reduction == "mean":
        total = total / count
        grad *= dtype.type(1.0 / count)
    return dtype.type(total), grad


def _class_targets(targets, positions, mask, C):
    """targets checked as class indices in [0, C) where the mask counts them,
    as intp with 0 elsewhere (any index will do where nothing is counted)."""
    try:
        targets = np.asarray(targets)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"targets must be an integer array of class indices: {exc}") from None
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be an integer array of class indices in [0, C), "
                        f"got dtype {targets.dtype}")
    check_shape("targets", targets, positions, "logits.shape[:-1]")
    counted = targets if mask is None else targets[np.broadcast_to(mask, positions)]
    if counted.size and (counted.min() < 0 or counted.max() >= C):
        raise ValueError(f"targets must be class indices in [0, C) = [0, {C}), "
                         f"got values from {counted.min()} to {counted.max()}")
    safe_targets = targets.astype(np.intp)
    return safe_targets if mask is None else np.where(mask, safe_targets, 0)


def _softmax_loss(logits, targets):
    """(logsumexp(logits) - logits[target], softmax(logits) - onehot(target))
    at every position."""
    # Stable log-sum-exp: subtract the row max (0 where the max is not finite,
    # as scipy.special.logsumexp, so -inf rows and NaN behave as IEEE says).
    with np.errstate(invalid="ignore", over="ignore"):
        shift = np.max(logits, axis=-1, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0).astype(logits.dtype, copy=False)
        shifted = logits - shift
        picked = np.take_along_axis(shifted, targets[..., None], axis=-1)
        grad = np.exp(shifted, out=shifted)  # in place: one (N, C) array in all
        total = grad.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            log_total = np.log(total)
        per_position = (log_total - picked)[..., 0]
        grad /= total
    np.put_along_axis(grad, targets[..., None],
                      np.take_along_axis(grad, targets[..., None], axis=-1) - 1, axis=-1)
    return per_position, grad


def softmax_cross_entropy(logits, targets, *, lengths=None, batch_first=False,
                          reduction="mean"):
    """Cross-entropy of softmax(logits) against integer class targets.

    logits : (..., C) real array; targets : integer array of shape
    logits.shape[:-1] with values in [0, C) (on counted positions).
    For each position, loss = logsumexp(logits) - logits[target], computed
    with the max subtracted, so logits of +-1e4 are fine; the gradient is
    softmax(logits) - onehot(target), divided by the number of counted
    positions for "mean". With lengths, logits is (T, B, C) (or (B, T, C)
    with batch_first, or more axes before C).

    Returns (loss, dlogits).
    """
    reduction = _check_reduction(reduction)
    logits = _as_float("logits", logits)
    if logits.ndim < 1:
        raise ValueError("logits must have shape (..., C), got a scalar")
    C = logits.shape[-1]
    if C < 1:
        raise ValueError(f"logits must have at least one class in its last axis (..., C); "
                         f"got shape {logits.shape}")
    positions = logits.shape[:-1]
    mask, count = _sequence_mask("logits", positions, lengths, batch_first, 2,
                                 "(B, T, ..., C)" if batch_first else "(T, B, ..., C)")
    if count == 0:
        raise ValueError(f"logits must have at least one position to take a loss over, "
                         f"got shape {logits.shape}")
    safe_targets = _class_targets(targets, positions, mask, C)
    per_position, grad = _softmax_loss(logits, safe_targets)
    return _reduce(per_position, grad, mask, count, reduction, "logits")


def _check_same_shape_targets(targets, reference, dtype):
    array = real_array("targets", targets)
    check_shape("targets", array, reference.shape, "the shape of the input")
    return array.astype(dtype, copy=False)


def _elementwise_arguments(name, values, targets, lengths, batch_first, reduction):
    """The checked arguments of a loss whose targets match its input element
    for element: (values, targets, mask, count, reduction)."""
    reduction = _check_reduction(reduction)
    values = _as_float(name, values)
    targets = _check_same_shape_targets(targets, values, values.dtype)
    mask, count = _sequence_mask(name, values.shape, lengths, batch_first, 2,
                                 "(B, T, ...)" if batch_first else "(T, B, ...)")
    return values, targets, mask, count, reduction


def binary_cross_entropy_with_logits(logits, targets, *, lengths=None, batch_first=False,
                                     reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1]
    (probabilities; soft labels allowed), of the same shape as logits.

    Per element, loss = softplus(z) - t * z = max(z, 0) - t * z +
    log1p(exp(-|z|)), stable for z of +-1e4; the gradient is sigmoid(z) - t,
    divided by the number of counted elements for "mean". With lengths,
    logits is (T, B, ...) (or (B, T, ...) with batch_first).

    Returns (loss, dlogits).
    """
    logits, targets, mask, count, reduction = _elementwise_arguments(
        "logits", logits, targets, lengths, batch_first, reduction)
    counted = targets if mask is None else targets[np.broadcast_to(mask, targets.shape)]
    if counted.size and (np.any(counted < 0) or np.any(counted > 1)):
        raise ValueError(f"targets must lie in [0, 1], got values from "
                         f"{np.nanmin(counted)} to {np.nanmax(counted)}")
    with np.errstate(invalid="ignore", over="ignore"):
        per_element = (np.maximum(logits, 0) - targets * logits
                       + np.log1p(np.exp(-np.abs(logits))))
        grad = expit(logits) - targets
    grad = grad.astype(logits.dtype, copy=False)
    return _reduce(per_element, grad, mask, count, reduction, "logits")


def mse(predictions, targets, *, lengths=None, batch_first=False, reduction="mean"):
    """Squared error sum((predictions - targets)**2), targets of the same
    shape; "mean" divides by the number of counted elements (torch's
    MSELoss). The gradient is 2 * (predictions - targets) (/ count). With
    lengths, predictions is (T, B, ...) (or (B, T, ...) with batch_first).

    Returns (loss, dpredictions).
    """
    predictions, targets, mask, count, reduction = _elementwise_arguments(
        "predictions", predictions, targets, lengths, batch_first, reduction)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = predictions - targets
        per_element = diff * diff
        grad = 2 * diff
    return _reduce(per_element, grad, mask, count, reduction, "predictions")
