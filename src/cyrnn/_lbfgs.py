"""Full-batch L-BFGS: scipy's L-BFGS-B over the flattened live parameters.

``cyrnn.optim.LBFGS`` has no L-BFGS of its own: each ``step(closure)`` hands
``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` a function of the
flattened parameters that writes the point scipy asks for into the live
arrays, calls the closure (the model's forward, loss and backward) and
returns the loss and the flattened gradient::

    opt = cyrnn.optim.LBFGS(model.parameters(), max_iter=50)

    def closure():
        y, _, tape = model.forward(x)
        loss, dy = cyrnn.losses.mse(y, target)
        return loss, model.backward(tape, dy).params

    loss = opt.step(closure)      # the loss at the parameters step() leaves

The constructor follows torch.optim.LBFGS; how its knobs map onto
L-BFGS-B's options, and where the two differ, is in LBFGS's docstring.
"""
import numbers

import numpy as np
from scipy.optimize import minimize

from cyrnn._sparse import RowGradient
from cyrnn._validation import check_int
from cyrnn.optim import _Optimizer, _non_negative

__all__ = ["LBFGS"]


def _count(name, value):
    return check_int(name, value, 1)


def _optional_count(name, value):
    return None if value is None else check_int(name, value, 1)


class _Point:
    """One evaluation: the float64 point, its loss and flattened gradient."""

    __slots__ = ("x", "loss", "grad")

    def __init__(self, x, loss, grad):
        self.x, self.loss, self.grad = x, loss, grad


class LBFGS(_Optimizer):
    """Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``.

    ``opt = LBFGS(params, *, max_iter=20, max_eval=None, tolerance_grad=1e-7,
    tolerance_change=1e-9, history_size=100, max_ls=20)`` over a mapping
    name -> live float array (``model.parameters()``), checked as the other
    optimizers check theirs (writable floating-point numpy arrays, not
    state_dict() copies, each appearing once), with at least one element in
    all.

    ``loss = opt.step(closure)`` runs ONE scipy minimize of at most
    ``max_iter`` iterations starting from the current parameters.
    ``closure()`` takes no argument and returns ``(loss, grads)``: a real
    scalar and a mapping name -> array of the parameter's shape, e.g.
    ``model.backward(tape, dy).params``; a missing or None name is a zero
    gradient, an Embedding's RowGradient counts as its dense array. Before
    each call the live arrays hold the point scipy asks for (scipy's
    float64 point, rounded to each array's dtype). When step
    returns, the arrays hold scipy's final point ``result.x`` (written in
    place, in each array's dtype) and the returned float is the loss the
    closure gave there. ``opt.result`` is scipy's OptimizeResult of the last
    step (None before the first step and after a step that raised); see
    "The final point" below for the one field corrected in it.

    Mapping of torch.optim.LBFGS's arguments onto L-BFGS-B's options
    (``opt.scipy_options()`` returns the dict passed to scipy):

    ================  ===========================================================
    max_iter          ``maxiter``: iterations (each one line search) per step.
    max_eval          ``maxfun = max_eval - 1``; None means torch's default
                      ``max_iter * 5 // 4``, from max_iter at each step. scipy
                      stops after an iteration once it has made more than maxfun
                      evaluations (its first, at the starting point, counted),
                      so the step ends after the first iteration that brings
                      the closure calls to max_eval or more: torch's rule. Like
                      torch's it is checked only between iterations: a line
                      search is never cut short, and L-BFGS-B restarts one that
                      failed from a refreshed memory within the same iteration,
                      so a step can call the closure up to about 2 * max_ls
                      times more than max_eval.
    tolerance_grad    ``gtol``: stop when max_i |g_i| <= tolerance_grad (torch's
                      test; scipy's projected gradient is the gradient without
                      bounds). As torch, checked at the starting point too.
    tolerance_change  ``ftol``: stop when (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1)
                      <= tolerance_change, i.e. torch's |f_k - f_k+1| test while
                      |f| <= 1 and a relative one above. torch's second test,
                      on the size of the parameter change, has no counterpart.
    history_size      ``maxcor``: the correction pairs kept. L-BFGS-B's workspace
                      is about 2 * history_size * n float64s for n parameters
                      (torch keeps as many in the parameters' dtype).
    max_ls            ``maxls``: evaluations per line search (not in torch's
                      constructor; its strong-Wolfe search allows 25).
    ================  ===========================================================

    Other differences from torch.optim.LBFGS:

    * The line search is always on: L-BFGS-B runs its Moré-Thuente search
      (strong Wolfe conditions) every iteration. There is no ``lr`` and no
      ``line_search_fn``; torch's default (no line search, a fixed step of
      lr) does not exist here.
    * Each step starts a fresh minimize with an empty memory: L-BFGS-B's
      correction pairs cannot be handed back to scipy, so nothing carries
      over between steps (torch keeps its direction and history across
      step() calls). For full-batch training prefer one step with a large
      max_iter to many short ones. state_dict() accordingly holds only the
      hyper-parameters.
    * scipy works in float64: the flattened point and gradient are float64
      whatever the parameters' dtype. For float32 (or float16) parameters
      the closure sees scipy's point rounded to that dtype, and its loss
      and gradient are taken as those of scipy's unrounded point, so the
      function scipy sees is slightly noisy: expect line searches to end "ABNORMAL" (scipy's message) near
      the optimum rather than tolerance_grad to be met.
    * step returns the loss at the FINAL point (torch returns the loss the
      closure gave at the starting point).
    * One group of parameters, no per-group options; no bounds.

    The final point. After a line search that fails (scipy's "ABNORMAL"
    message), L-BFGS-B restores the previous iterate in ``result.x`` but
    scipy (seen with 1.17) leaves the loss and gradient of the rejected last
    trial point in ``result.fun`` and ``result.jac``. step keeps the loss
    and gradient of every accepted iterate, writes result.x into the live
    arrays and puts that point's own loss and gradient into result.fun and
    result.jac, so the returned loss is always the loss at the parameters
    step leaves (should result.x ever be a point step did not see evaluated,
    step calls the closure there once more).

    Errors. A closure that is not callable, or a result that is not a pair
    (loss, mapping), is a TypeError; a loss that is not a real scalar, a
    gradient mapping with unknown names, wrong shapes or non-real arrays is
    a ValueError or TypeError naming what is wrong. A non-finite loss or
    gradient stops the step with a ValueError: L-BFGS-B would take NaN or Inf
    as a value (its line search then reports a spurious convergence with
    Inf, or wanders off with NaN), so it is better to stop. Whenever the
    closure raises or its result is rejected, the live arrays are first put
    back to the last accepted iterate of the step (its starting point if
    none was accepted yet), never left at a trial point; opt.result is None.
    """

    _HYPER = {"max_iter": _count, "max_eval": _optional_count,
              "tolerance_grad": _non_negative, "tolerance_change": _non_negative,
              "history_size": _count, "max_ls": _count}
    _STATE = ()

    def __init__(self, params, *, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, max_ls=20):
        super().__init__(params, max_iter=max_iter, max_eval=max_eval,
                         tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                         history_size=history_size, max_ls=max_ls)
        self._slices = {}
        start = 0
        for name, array in self._params.items():
            self._slices[name] = slice(start, start + array.size)
            start += array.size
        if start == 0:
            raise ValueError(f"params must hold at least one element to optimize, got "
                             f"{len(self._params)} parameters with no elements")
        self._size = start
        self.result = None

    # -- the mapping onto scipy ---------------------------------------------
    def scipy_options(self):
        """The ``options`` step passes to scipy.optimize.minimize(method=
        "L-BFGS-B"), from the current hyper-parameters."""
        h = self._hyper
        max_eval = h["max_eval"] if h["max_eval"] is not None else h["max_iter"] * 5 // 4
        return {"maxiter": h["max_iter"], "maxfun": max_eval - 1,
                "gtol": h["tolerance_grad"], "ftol": h["tolerance_change"],
                "maxcor": h["history_size"], "maxls": h["max_ls"]}

    # -- flattening ----------------------------------------------------------
    def _flatten(self):
        x = np.empty(self._size, dtype=np.float64)
        for name, array in self._params.items():
            x[self._slices[name]] = array.ravel()
        return x

    def _write(self, x):
        """x (float64) into the live arrays, in place, in each one's dtype."""
        for name, array in self._params.items():
            array[...] = x[self._slices[name]].reshape(array.shape)

    def _check_result(self, out, evaluation):
        """(loss as a float, flattened float64 gradient) from closure()'s result."""
        where = f"closure() (evaluation {evaluation} of this step)"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            got = (f"a {type(out).__name__} of length {len(out)}"
                   if isinstance(out, (tuple, list)) else type(out).__name__)
            raise TypeError(f"{where} must return a pair (loss, grads), grads a mapping "
                            f"name -> array such as model.backward(tape, dy).params; got {got}")
        loss, grads = out
        if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, (numbers.Real, np.ndarray)):
            raise TypeError(f"{where} returned a loss that is not a real number: {loss!r}")
        loss_array = np.asarray(loss)
        if loss_array.dtype.kind not in "iuf":
            raise TypeError(f"{where} returned a loss of dtype {loss_array.dtype}; "
                            f"it must be a real number")
        if loss_array.ndim != 0:
            raise ValueError(f"{where} returned a loss of shape {loss_array.shape}; "
                             f"it must be a scalar")
        loss = float(loss_array)
        if not (hasattr(grads, "keys") and hasattr(grads, "__getitem__")):
            hint = " (pass its .params)" if hasattr(grads, "params") else ""
            raise TypeError(f"{where} returned grads of type {type(grads).__name__}{hint}; "
                            f"it must be a mapping name -> array such as "
                            f"model.backward(tape, dy).params")
        try:
            checked = self._check_grads(grads)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where} returned bad gradients: {exc}") from None
        flat = np.zeros(self._size, dtype=np.float64)
        for name, grad in checked.items():
            view = flat[self._slices[name]].reshape(self._params[name].shape)
            if isinstance(grad, RowGradient):      # an Embedding's rows
                grad.add_to(view)
            else:
                view[...] = grad
        if not np.isfinite(loss):
            raise ValueError(f"{where} returned a non-finite loss ({loss}); L-BFGS-B cannot "
                             f"go on from it")
        if not np.all(np.isfinite(flat)):
            bad = [name for name in checked if not np.all(np.isfinite(flat[self._slices[name]]))]
            raise ValueError(f"{where} returned non-finite gradients in {bad} "
                             f"(loss {loss}); L-BFGS-B cannot go on from them")
        return loss, flat

    # -- the step ------------------------------------------------------------
    def step(self, closure):
        """One scipy L-BFGS-B minimize of at most max_iter iterations from the
        current parameters; returns the final loss (a float) with the live
        arrays holding the final point. See the class docstring."""
        if not callable(closure):
            raise TypeError(f"closure must be a callable returning (loss, grads), "
                            f"got {type(closure).__name__}")
        self.result = None
        options = self.scipy_options()
        x0 = self._flatten()
        evaluations = 0
        last = None        # the latest evaluation
        accepted = None    # the latest accepted iterate (first: the starting point)

        def fun(x):
            nonlocal evaluations, last, accepted
            x = np.array(x, dtype=np.float64, copy=True)
            self._write(x)
            evaluations += 1
            loss, grad = self._check_result(closure(), evaluations)
            last = _Point(x, loss, grad)
            if accepted is None and np.array_equal(x, x0):
                accepted = last
            return loss, grad

        def callback(intermediate_result):
            # called by scipy after each iteration, at the accepted iterate:
            # the point just evaluated
            nonlocal accepted
            if last is not None and np.array_equal(intermediate_result.x, last.x):
                accepted = last

        try:
            result = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=callback,
                              options=options)
        except BaseException:
            self._write(accepted.x if accepted is not None else x0)
            raise

        final = self._final_point(result.x, (last, accepted), fun,
                                  accepted.x if accepted is not None else x0)
        self._write(final.x)       # the arrays may hold a later, rejected trial point
        result.fun = final.loss
        result.jac = final.grad.copy()
        self.result = result
        return final.loss

    def _final_point(self, x, candidates, fun, fallback):
        """The evaluated point at scipy's final x: the candidate (the latest
        evaluation, the latest accepted iterate) that is x, else x evaluated
        once more (not expected); the arrays go back to fallback if that
        evaluation raises."""
        for point in candidates:
            if point is not None and np.array_equal(x, point.x):
                return point
        try:
            loss, grad = fun(x)
        except BaseException:
            self._write(fallback)
            raise
        return _Point(np.array(x, dtype=np.float64), loss, grad)

    # -- state -----------------------------------------------------------------
    def state_dict(self):
        """{'hyperparameters': {...}, 'state': {}}: L-BFGS-B's memory lives
        inside one scipy call and cannot be saved or resumed."""
        return {"hyperparameters": dict(self._hyper), "state": {}}

    def load_state_dict(self, state_dict):
        """Restores the hyper-parameters of state_dict(). 'state' must be
        empty (per-parameter entries, if any, empty too): there is no
        L-BFGS-B memory to restore."""
        super().load_state_dict(state_dict)
        self._state = {}

    def _load_state(self, where, param, state):
        if len(state.keys()):
            raise ValueError(f"{where} must be empty: LBFGS keeps no state between steps "
                             f"(scipy's L-BFGS-B memory cannot be resumed), got keys "
                             f"{list(state.keys())}")
        return {}
