"""Optimizers and gradient clipping over dicts of named numpy arrays.

An optimizer is built over the live parameter arrays of one or more layers
(``model.parameters()``; merge several models' dicts under distinct names)
and updates them IN PLACE from a dict of gradients with the same names,
e.g. ``g.params`` from a layer's ``backward``::

    opt = cyrnn.optim.Adam(model.parameters(), lr=1e-3)
    y, tape = model.forward(x)
    loss, dy = cyrnn.losses.mse(y, target)
    opt.step(model.backward(tape, dy).params)

The update formulas are torch.optim's (SGD, Adam, AdamW; maximize=False,
amsgrad=False), computed in each parameter's own dtype. Like torch, a
parameter whose gradient is missing (or None) is skipped and its state
(momentum, Adam's step count) does not advance.
"""
import numbers

import numpy as np

from cyrnn._parameters import is_state_dict_copy
from cyrnn._sparse import RowGradient
from cyrnn._validation import as_real_array, check_bool

__all__ = ["SGD", "Adam", "AdamW", "LBFGS", "clip_grad_norm", "clip_grad_value"]


def _check_real(name, value, *, minimum=None, strict=False, maximum=None, max_strict=False):
    """A finite real number within the given bounds, as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if strict else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"{'<' if max_strict else '<='} {maximum}")
    ok = np.isfinite(value)
    if minimum is not None:
        ok = ok and (value > minimum if strict else value >= minimum)
    if maximum is not None:
        ok = ok and (value < maximum if max_strict else value <= maximum)
    if not ok:
        raise ValueError(f"{name} must be a finite number {' and '.join(bounds)}, got {value}")
    return value


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (_check_real("betas[0]", betas[0], minimum=0.0, maximum=1.0, max_strict=True),
            _check_real("betas[1]", betas[1], minimum=0.0, maximum=1.0, max_strict=True))


def _check_mapping(name, value):
    if not hasattr(value, "keys") or not hasattr(value, "__getitem__"):
        raise TypeError(f"{name} must be a mapping of names to arrays, "
                        f"got {type(value).__name__}")
    return value


def _check_live_array(name, value):
    """An array an update can be written into."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array updated in place (e.g. from "
                        f"model.parameters()), got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {value.dtype}")
    if not value.flags.writeable:
        raise ValueError(f"{name} is read-only; pass the live arrays of model.parameters(), "
                         f"not copies frozen elsewhere")
    return value


def _check_parameter(name, value):
    """A live array that is not a copy the model never reads."""
    if is_state_dict_copy(_check_live_array(name, value)):
        raise ValueError(f"{name} is a copy from state_dict(), which the model never reads: "
                         f"training it would change nothing; pass model.parameters(), the "
                         f"model's own arrays")
    return value


class _Optimizer:
    """Shared bookkeeping: the named live arrays, checking gradients and the
    state_dict round trip. Subclasses define _HYPER (name -> checker),
    _STATE (buffer names) and _update(name, param, grad, state)."""

    _HYPER = {}
    _STATE = ()

    def __init__(self, params, **hyper):
        _check_mapping("params", params)
        self._params = {}
        seen = {}
        for name in params.keys():
            array = _check_parameter(f"params[{name!r}]", params[name])
            if id(array) in seen:
                raise ValueError(f"params[{name!r}] is the same array as params[{seen[id(array)]!r}]; "
                                 f"each parameter must appear once")
            seen[id(array)] = name
            self._params[name] = array
        self._hyper = {}
        for name, value in hyper.items():
            setattr(self, name, value)
        self._check_combination()
        self._state = {}

    def _check_combination(self):
        pass

    def __setattr__(self, name, value):
        # hyper-parameters are checked whenever they are set (e.g. by an LR
        # schedule doing opt.lr = ...)
        if name in type(self)._HYPER:
            value = type(self)._HYPER[name](name, value)
            if "_state" not in self.__dict__:      # still in __init__
                self._hyper[name] = value
                return
            saved = self._hyper
            self._hyper = dict(saved, **{name: value})
            try:
                self._check_combination()
            except ValueError:
                self._hyper = saved
                raise
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper", {})
        if name in hyper:
            return hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{type(self).__name__}({len(self._params)} parameters, {options})"

    @property
    def params(self):
        """name -> the live arrays this optimizer updates."""
        return dict(self._params)

    def _check_grads(self, grads):
        _check_mapping("grads", grads)
        unknown = [name for name in grads.keys() if name not in self._params]
        if unknown:
            raise ValueError(f"grads has names that are not parameters of this optimizer: "
                             f"{unknown}; expected a subset of {list(self._params)}")
        checked = {}
        for name, param in self._params.items():
            if name not in grads or grads[name] is None:
                continue
            grad = grads[name]
            if isinstance(grad, RowGradient):
                grad = grad.astype(param.dtype)
            else:
                grad = as_real_array(f"grads[{name!r}]", grad, param.dtype)
            if grad.shape != param.shape:
                raise ValueError(f"grads[{name!r}] must have the shape of params[{name!r}] "
                                 f"= {param.shape}, got {grad.shape}")
            checked[name] = grad
        return checked

    def step(self, grads):
        """Updates the parameters in place from grads (name -> array of the
        parameter's shape). Missing or None names are skipped; an unknown
        name or a wrong shape is a ValueError and nothing is updated."""
        checked = self._check_grads(grads)
        for name, grad in checked.items():
            self._update(name, self._params[name], grad, self._state.setdefault(name, {}))

    def state_dict(self):
        """{'hyperparameters': {...}, 'state': {name: {...}}} with copies of
        every buffer; parameters themselves are not included."""
        return {"hyperparameters": dict(self._hyper),
                "state": {name: {key: (value.copy() if isinstance(value, np.ndarray) else value)
                                 for key, value in state.items()}
                          for name, state in self._state.items()}}

    def load_state_dict(self, state_dict):
        """Restores what state_dict() returned (buffers converted to each
        parameter's dtype). An unknown parameter name, a missing or misshapen
        buffer is a ValueError; nothing changes unless everything fits."""
        _check_mapping("state_dict", state_dict)
        unexpected = [k for k in state_dict.keys() if k not in ("hyperparameters", "state")]
        if unexpected or "state" not in state_dict:
            raise ValueError(f"state_dict must have the keys 'hyperparameters' and 'state', "
                             f"got {list(state_dict.keys())}")
        hyper = dict(self._hyper)
        given = state_dict.get("hyperparameters", {})
        _check_mapping("state_dict['hyperparameters']", given)
        for key in given.keys():
            if key not in self._HYPER:
                raise ValueError(f"state_dict['hyperparameters'] has an unknown name {key!r}; "
                                 f"expected {list(self._HYPER)}")
            hyper[key] = self._HYPER[key](f"state_dict['hyperparameters'][{key!r}]", given[key])
        states = _check_mapping("state_dict['state']", state_dict["state"])
        restored = {}
        for name in states.keys():
            if name not in self._params:
                raise ValueError(f"state_dict['state'] has an unknown parameter {name!r}; "
                                 f"expected names among {list(self._params)}")
            where = f"state_dict['state'][{name!r}]"
            state = _check_mapping(where, states[name])
            restored[name] = self._load_state(where, self._params[name], state)
        saved_hyper = self._hyper
        self._hyper = hyper
        try:
            self._check_combination()
        except ValueError:
            self._hyper = saved_hyper
            raise
        self._state = restored

    def _load_state(self, where, param, state):
        extra = [k for k in state.keys() if k not in self._STATE]
        missing = [k for k in self._STATE if k not in state]
        if extra or missing:
            raise ValueError(f"{where} must have exactly the keys {list(self._STATE)}: "
                             f"missing {missing}, unexpected {extra}")
        out = {}
        for key in self._STATE:
            if key == "step":
                value = state[key]
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
                        or value < 0:
                    raise ValueError(f"{where}['step'] must be a non-negative integer, "
                                     f"got {value!r}")
                out[key] = int(value)
                continue
            value = as_real_array(f"{where}[{key!r}]", state[key], param.dtype)
            if value.shape != param.shape:
                raise ValueError(f"{where}[{key!r}] must have the parameter's shape "
                                 f"{param.shape}, got {value.shape}")
            out[key] = np.array(value, dtype=param.dtype, copy=True)
        return out


def _positive(name, value):
    return _check_real(name, value, minimum=0.0, strict=True)


def _non_negative(name, value):
    return _check_real(name, value, minimum=0.0)


def _unit(name, value):
    return _check_real(name, value, minimum=0.0, maximum=1.0)


class SGD(_Optimizer):
    """Stochastic gradient descent with optional momentum, as torch.optim.SGD:

        g = grad + weight_decay * p
        buf = g                                    (first step)
        buf = momentum * buf + (1 - dampening) * g  (later steps)
        g = g + momentum * buf if nesterov else buf (when momentum != 0)
        p -= lr * g
    """

    _HYPER = {"lr": _positive, "momentum": _non_negative, "dampening": _unit,
              "nesterov": check_bool, "weight_decay": _non_negative}
    _STATE = ("momentum_buffer",)

    def __init__(self, params, lr, *, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         nesterov=nesterov, weight_decay=weight_decay)

    def _check_combination(self):
        h = self._hyper
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError(f"nesterov requires momentum > 0 and dampening == 0, got "
                             f"momentum={h['momentum']}, dampening={h['dampening']}")

    def _update(self, name, param, grad, state):
        h = self._hyper
        if isinstance(grad, RowGradient):
            if not h["weight_decay"] and not h["momentum"]:
                param[grad.indices] -= h["lr"] * grad.values  # the rows the batch touched
                return
            grad = grad.toarray()  # the update reaches every row
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * param
        if h["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=param.dtype, copy=True)
            else:
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * grad
            grad = grad + h["momentum"] * buf if h["nesterov"] else buf
        param -= h["lr"] * grad

    def _load_state(self, where, param, state):
        # without momentum torch keeps no buffer; accept an empty state then
        if not state and not self._hyper["momentum"]:
            return {}
        return super()._load_state(where, param, state)


class _AdamBase(_Optimizer):
    _STATE = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr, *, betas, eps, weight_decay):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, name, param, grad, state):
        h = self._hyper
        lr, (beta1, beta2), eps, wd = h["lr"], h["betas"], h["eps"], h["weight_decay"]
        if isinstance(grad, RowGradient):
            grad = grad.toarray()  # the moments of every row decay: a dense update
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param), exp_avg_sq=np.zeros_like(param))
        state["step"] += 1
        step = state["step"]
        if wd:
            if self._decoupled:
                param *= 1 - lr * wd
            else:
                grad = grad + wd * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        denom = np.sqrt(exp_avg_sq)
        denom /= bias_correction2 ** 0.5
        denom += eps
        param -= step_size * (exp_avg / denom)


class Adam(_AdamBase):
    """Adam as torch.optim.Adam (weight_decay is L2 added to the gradient):

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    _HYPER = {"lr": _positive, "betas": lambda n, v: _check_betas(v), "eps": _non_negative,
              "weight_decay": _non_negative}

    def __init__(self, params, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)


class AdamW(_AdamBase):
    """AdamW as torch.optim.AdamW (decoupled weight decay): first
    p *= 1 - lr * weight_decay, then Adam's update without L2."""

    _HYPER = Adam._HYPER
    _decoupled = True

    def __init__(self, params, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)


# -- gradient clipping ------------------------------------------------------
def _grad_arrays(grads):
    """(label, array) for a mapping name -> array or a sequence of arrays;
    None entries are skipped (a parameter without a gradient)."""
    if hasattr(grads, "keys") and hasattr(grads, "__getitem__"):
        items = [(f"grads[{name!r}]", grads[name]) for name in grads.keys()]
    elif isinstance(grads, np.ndarray):
        items = [("grads", grads)]
    elif isinstance(grads, (list, tuple)) and not hasattr(grads, "_fields"):
        items = [(f"grads[{i}]", g) for i, g in enumerate(grads)]
    else:
        raise TypeError(f"grads must be a mapping of names to arrays (e.g. Gradients.params) "
                        f"or a list of arrays, got {type(grads).__name__}")
    # A RowGradient's values hold all of its nonzero entries, once each.
    return [(label, _check_live_array(label, g.values if isinstance(g, RowGradient) else g))
            for label, g in items if g is not None]


def clip_grad_norm(grads, max_norm, norm_type=2.0, *, error_if_nonfinite=False):
    """Scales the gradients in place so that their total norm is at most
    max_norm, with torch.nn.utils.clip_grad_norm_'s rule: total_norm is the
    norm_type-norm of the per-array norms; when
    max_norm / (total_norm + 1e-6) < 1 every array is multiplied by it.
    norm_type may be any number > 0 or inf. A NaN or Inf total norm is a
    ValueError with error_if_nonfinite, otherwise (as torch) the gradients
    are scaled by max_norm / (total_norm + 1e-6), i.e. become 0 or NaN.
    Returns total_norm (a float, before clipping)."""
    arrays = _grad_arrays(grads)
    max_norm = _non_negative("max_norm", max_norm)
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real) \
            or not float(norm_type) > 0:
        raise ValueError(f"norm_type must be a number > 0 or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    error_if_nonfinite = check_bool("error_if_nonfinite", error_if_nonfinite)
    if not arrays:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.array([np.linalg.norm(g.ravel().astype(np.float64, copy=False), ord=norm_type)
                          if g.size else 0.0 for _, g in arrays])
        total = float(np.linalg.norm(norms, ord=norm_type))
    if not np.isfinite(total):
        if error_if_nonfinite:
            raise ValueError(f"the total norm of order {norm_type} of grads is {total}; "
                             f"pass error_if_nonfinite=False to scale anyway")
        coef = max_norm / (total + 1e-6)      # 0 for Inf, NaN for NaN, as torch
    else:
        coef = max_norm / (total + 1e-6)
        if coef >= 1.0:
            return total
    with np.errstate(invalid="ignore"):      # Inf * 0 -> NaN, as torch
        for _, g in arrays:
            g *= g.dtype.type(coef)
    return total


def clip_grad_value(grads, clip_value):
    """Clips every gradient in place to [-clip_value, clip_value]
    (torch.nn.utils.clip_grad_value_); NaN stays NaN."""
    arrays = _grad_arrays(grads)
    clip_value = _non_negative("clip_value", clip_value)
    for _, g in arrays:
        np.clip(g, -clip_value, clip_value, out=g)


from cyrnn._lbfgs import LBFGS  # noqa: E402 (last: _lbfgs builds on _Optimizer above)
