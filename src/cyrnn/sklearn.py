"""scikit-learn estimators on cyrnn's recurrent layers (the ``sklearn`` extra:
``pip install "cyrnn[sklearn]"``).

* ``RNNRegressor``: one target vector per sequence (many-to-one), or one per
  step (many-to-many) when ``y`` has a time axis;
* ``RNNClassifier``: one label per sequence, with ``predict_proba``;
* ``SequenceScaler``: standardises each feature over every step of every
  sequence, for a ``Pipeline`` in front of either estimator.

Inputs
------
``X`` is any of

* an array ``(n_samples, T, n_features)``: sequences of one length;
* a list of ``n_samples`` 2-D arrays ``(T_i, n_features)`` of any lengths:
  padded internally and passed to the layers as ``lengths``, so padding costs
  nothing and changes nothing;
* a 2-D array ``(n_samples, n_features)``: read as sequences of one step
  (tabular data; this is what scikit-learn's generic tools and checks pass).
  A batch of univariate series ``(n_samples, T)`` must be given as
  ``X[..., None]``.

``n_features_in_`` is the number of features per step.

Targets
-------
``RNNClassifier``: ``y`` of shape ``(n_samples,)``, any labels
(``classes_`` holds them, sorted). ``RNNRegressor``: ``y`` of shape
``(n_samples,)`` or ``(n_samples, n_outputs)`` for one target per sequence
(read from the last step: the final hidden state of the last layer, both
directions' when bidirectional); for one target per step, ``y`` of shape
``(n_samples, T, n_outputs)`` with a 3-D ``X``, or, with a list ``X``, a
list of arrays ``(T_i,)`` or ``(T_i, n_outputs)``; ``predict`` then returns
the same form (padded steps of a 3-D result are 0). A 2-D ``y`` is always
one vector per sequence; for one scalar per step use ``y[..., None]``.

The model is ``cell`` layers (``rnn_``: a ``cyrnn.LSTM``, ``GRU`` or
``RNN``, ``batch_first``), ``Dropout`` and a ``cyrnn.Linear`` head
(``head_``), trained with ``cyrnn.optim.Adam`` on the mean squared error
(regressor) or the softmax cross-entropy (classifier), in minibatches
drawn without replacement every epoch.

Everything is reproducible from ``random_state`` (an int gives the same
model at every fit); estimators pickle and travel to joblib or Dask workers.

A pipeline::

    from sklearn.pipeline import make_pipeline
    from cyrnn.sklearn import RNNClassifier, SequenceScaler

    clf = make_pipeline(SequenceScaler(), RNNClassifier(hidden_size=32, random_state=0))
    clf.fit(sequences, labels)          # sequences: a list of (T_i, n_features) arrays
    clf.predict_proba(test_sequences)
"""
import numbers

import numpy as np
from sklearn.base import (
    BaseEstimator, ClassifierMixin, OneToOneFeatureMixin, RegressorMixin, TransformerMixin)
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

import cyrnn
from cyrnn import losses, optim
from cyrnn._progress import Progress
from cyrnn._validation import check_bool

__all__ = ["RNNRegressor", "RNNClassifier", "SequenceScaler"]

_CELLS = {"lstm": cyrnn.LSTM, "gru": cyrnn.GRU, "rnn": cyrnn.RNN}
_FLOATS = (np.float64, np.float32)
_PREDICT_ROWS = 512       # sequences per inference batch


# -- sequences -----------------------------------------------------------------
class _Sequences:
    """Validated X: `padded` (n, T, f) with zeros past each length, `lengths`
    (n,) intp, `form` "list", "3d" or "2d" (what the caller gave)."""

    __slots__ = ("padded", "lengths", "form")

    def __init__(self, padded, lengths, form):
        self.padded, self.lengths, self.form = padded, lengths, form

    def __len__(self):
        return self.padded.shape[0]

    def batch(self, rows):
        """(x, lengths or None) of these rows, cut to their longest sequence."""
        lengths = self.lengths[rows]
        T = int(lengths.max())
        x = self.padded[rows, :T]
        return x, (lengths if (lengths != T).any() else None)


def _is_sequence_list(X):
    """A list/tuple of 2-D array-likes (one per sequence), as opposed to a
    nested list that is one 2-D or 3-D array."""
    if not isinstance(X, (list, tuple)) or not X:
        return False
    first = X[0]
    if not isinstance(first, np.ndarray):
        return False      # lists of lists are arrays: X.tolist() is read as np.asarray would
    return first.ndim == 2


def _check_sequences(estimator, X, *, reset, dtype=_FLOATS):
    """X as _Sequences; sets or checks n_features_in_ (and, from a
    DataFrame, feature_names_in_) as scikit-learn's validate_data does."""
    # feature names only (X is checked below, as sequences)
    validate_data(estimator, X=X, reset=reset, skip_check_array=True, ensure_2d=False)
    if _is_sequence_list(X):
        arrays = [check_array(x, dtype=dtype, input_name=f"X[{i}]", estimator=estimator)
                  for i, x in enumerate(X)]
        n_features = arrays[0].shape[1]
        for i, a in enumerate(arrays):
            if a.shape[1] != n_features:
                raise ValueError(f"X[{i}] has {a.shape[1]} features per step but X[0] has "
                                 f"{n_features}: every sequence of X must have the same "
                                 f"number of features")
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.intp)
        out_dtype = np.result_type(*[a.dtype for a in arrays])
        padded = np.zeros((len(arrays), int(lengths.max()), n_features), dtype=out_dtype)
        for i, a in enumerate(arrays):
            padded[i, :a.shape[0]] = a
        form = "list"
    else:
        X = check_array(X, dtype=dtype, allow_nd=True, input_name="X", estimator=estimator)
        if X.ndim == 2:
            padded, form = X[:, None, :], "2d"
        elif X.ndim == 3:
            padded, form = X, "3d"
            if X.shape[1] == 0 or X.shape[2] == 0:
                raise ValueError(f"X must have at least one step and one feature: shape "
                                 f"(n_samples, T, n_features), got {X.shape}")
        else:
            raise ValueError(f"X must be (n_samples, T, n_features), a list of (T_i, "
                             f"n_features) arrays or (n_samples, n_features); got an array "
                             f"of shape {X.shape}")
        lengths = np.full(X.shape[0], padded.shape[1], dtype=np.intp)
    _check_n_features(estimator, padded.shape[2], reset)
    return _Sequences(padded, lengths, form)


def _check_n_features(estimator, n_features, reset):
    if reset:
        estimator.n_features_in_ = n_features
    elif n_features != estimator.n_features_in_:
        raise ValueError(f"X has {n_features} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input.")


def _same_form(seqs, values):
    """values (n, T, k) per step back in the caller's form: a list of
    (T_i, k) arrays for a list X, else the padded array."""
    if seqs.form == "list":
        return [values[i, :length] for i, length in enumerate(seqs.lengths)]
    return values


# -- the estimators ---------------------------------------------------------------
def _check_number(name, value, *, integer=False, low=None, high=None, low_open=False,
                  high_open=False, none=False):
    if value is None and none:
        return None
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}"
                        f"{' or None' if none else ''}, got {value!r}")
    bad = (not np.isfinite(value)
           or (low is not None and (value <= low if low_open else value < low))
           or (high is not None and (value >= high if high_open else value > high)))
    if bad:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}, "
        hi = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {lo or '(-inf, '}{hi}, got {value!r}")
    return value


class _RNNEstimator(BaseEstimator):
    """What both estimators share: parameters, the model, the training loop."""

    def __init__(self, cell="lstm", *, hidden_size=32, num_layers=1, bidirectional=False,
                 dropout=0.0, lr=1e-3, weight_decay=0.0, clip=None, max_epochs=50,
                 batch_size=32, shuffle=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, dtype="float32", random_state=None,
                 verbose=0):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters, checked at fit (scikit-learn's rule: __init__ only stores)
    def _check_params(self):
        if not isinstance(self.cell, str) or self.cell.lower() not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {self.cell!r}")
        _check_number("hidden_size", self.hidden_size, integer=True, low=1)
        _check_number("num_layers", self.num_layers, integer=True, low=1)
        check_bool("bidirectional", self.bidirectional)
        _check_number("dropout", self.dropout, low=0, high=1, high_open=True)
        _check_number("lr", self.lr, low=0, low_open=True)
        _check_number("weight_decay", self.weight_decay, low=0)
        _check_number("clip", self.clip, low=0, low_open=True, none=True)
        _check_number("max_epochs", self.max_epochs, integer=True, low=1)
        _check_number("batch_size", self.batch_size, integer=True, low=1)
        check_bool("shuffle", self.shuffle)
        check_bool("early_stopping", self.early_stopping)
        _check_number("validation_fraction", self.validation_fraction, low=0, high=1,
                      low_open=True, high_open=True)
        _check_number("n_iter_no_change", self.n_iter_no_change, integer=True, low=1)
        _check_number("tol", self.tol, low=0)
        _check_number("verbose", self.verbose, integer=True, low=0)
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    # -- the model ---------------------------------------------------------
    def _build(self, n_features, n_outputs, rng):
        """rnn_, head_, optimizer_ and the generators, from rng."""
        dtype = self._check_params()
        seeds = [int(s) for s in rng.randint(0, 2**31 - 1, size=4)]
        layer = _CELLS[self.cell.lower()]
        self.rnn_ = layer(n_features, self.hidden_size, self.num_layers, batch_first=True,
                          dropout=float(self.dropout) if self.num_layers > 1 else 0.0,
                          bidirectional=bool(self.bidirectional), dtype=dtype, seed=seeds[0])
        self.head_ = cyrnn.Linear(self.rnn_.output_size, n_outputs, dtype=dtype, seed=seeds[1])
        self._head_dropout = cyrnn.Dropout(float(self.dropout), seed=seeds[2])
        self._batches_rng = np.random.default_rng(seeds[3])
        self.optimizer_ = optim.Adam(self._parameters(), lr=float(self.lr),
                                     weight_decay=float(self.weight_decay))
        self.loss_curve_ = []
        self.validation_loss_curve_ = []
        self.n_iter_ = 0

    def _parameters(self):
        params = {f"rnn.{k}": v for k, v in self.rnn_.parameters().items()}
        params.update((f"head.{k}", v) for k, v in self.head_.parameters().items())
        return params

    def _last_states(self, hn):
        """The last layer's final hidden state, both directions side by side:
        (B, D * H)."""
        h = hn[0] if isinstance(hn, tuple) else hn
        D = 2 if self.rnn_.bidirectional else 1
        return h[-1] if D == 1 else np.concatenate([h[-2], h[-1]], axis=1)

    def _state_gradient(self, hn, dfeatures):
        """dL/dh_n for backward, from the gradient of _last_states."""
        h = hn[0] if isinstance(hn, tuple) else hn
        dh = np.zeros_like(h)
        if self.rnn_.bidirectional:
            H = h.shape[2]
            dh[-2], dh[-1] = dfeatures[:, :H], dfeatures[:, H:]
        else:
            dh[-1] = dfeatures
        return (dh, None) if isinstance(hn, tuple) else dh

    def _train_batch(self, x, lengths, target):
        """One optimizer step on one batch; returns the batch's loss."""
        y, hn, tape = self.rnn_.forward(x, lengths=lengths)
        features = y if self._per_step else self._last_states(hn)
        features, drop_tape = self._head_dropout.forward(features)
        out, head_tape = self.head_.forward(features)
        loss, dout = self._loss(out, target, lengths)
        head_grads = self.head_.backward(head_tape, dout)
        dfeatures = self._head_dropout.backward(drop_tape, head_grads.input).input
        if self._per_step:
            rnn_grads = self.rnn_.backward(tape, dfeatures, input_grad=False)
        else:
            rnn_grads = self.rnn_.backward(tape, None, self._state_gradient(hn, dfeatures),
                                           input_grad=False)
        grads = {f"rnn.{k}": v for k, v in rnn_grads.params.items()}
        grads.update((f"head.{k}", v) for k, v in head_grads.params.items())
        if self.clip is not None:
            optim.clip_grad_norm(grads, float(self.clip))
        self.optimizer_.step(grads)
        return float(loss)

    def _outputs(self, seqs, rows=None):
        """The head's outputs (before any softmax) in float64: (n, k), or
        (n, T, k) per step, zero past each length. Inference: no dropout. The
        head is applied in float64 so that a sequence's result does not
        depend on the other rows of its batch."""
        rows = np.arange(len(seqs)) if rows is None else rows
        weight = self.head_.parameters()["weight"].astype(np.float64)
        bias = self.head_.parameters()["bias"].astype(np.float64)
        n_out = weight.shape[0]
        shape = (len(rows), seqs.padded.shape[1], n_out) if self._per_step \
            else (len(rows), n_out)
        result = np.zeros(shape)
        for start in range(0, len(rows), _PREDICT_ROWS):
            part = rows[start:start + _PREDICT_ROWS]
            x, lengths = seqs.batch(part)
            y, hn = self.rnn_(x.astype(self.rnn_.dtype, copy=False), lengths=lengths)
            features = y if self._per_step else self._last_states(hn)
            out = features.astype(np.float64) @ weight.T + bias
            if self._per_step:
                if lengths is not None:
                    out[np.arange(out.shape[1])[None, :] >= lengths[:, None]] = 0.0
                result[start:start + len(part), :out.shape[1]] = out
            else:
                result[start:start + len(part)] = out
        return result

    # -- training ----------------------------------------------------------
    def _run_epochs(self, seqs, targets, epochs, *, early_stopping, rng):
        """Trains for `epochs` (fewer when early stopping says so)."""
        train = np.arange(len(seqs))
        valid = None
        if early_stopping:
            train, valid = self._validation_split(seqs, targets, rng)
        best, best_state, waited = np.inf, None, 0
        bar = Progress(epochs, type(self).__name__, bar=True if self.verbose else None)
        try:
            for _ in range(epochs):
                loss = self._epoch(seqs, targets, train)
                self.loss_curve_.append(loss)
                self.n_iter_ += 1
                stats = {"loss": loss}
                if valid is not None:
                    vloss = self._validation_loss(seqs, targets, valid)
                    self.validation_loss_curve_.append(vloss)
                    stats["val_loss"] = vloss
                    if vloss < best - float(self.tol):
                        best, waited = vloss, 0
                        best_state = (self.rnn_.state_dict(), self.head_.state_dict())
                    else:
                        waited += 1
                bar.update(1, **stats)
                if valid is not None and waited >= self.n_iter_no_change:
                    break
        finally:
            bar.close()
        if best_state is not None:
            self.rnn_.load_state_dict(best_state[0])
            self.head_.load_state_dict(best_state[1])
            self.best_validation_loss_ = best

    def _epoch(self, seqs, targets, rows):
        order = self._batches_rng.permutation(rows) if self.shuffle else rows
        total = 0.0
        for start in range(0, len(order), self.batch_size):
            part = order[start:start + self.batch_size]
            x, lengths = seqs.batch(part)
            target = targets[part]
            if self._per_step:
                target = target[:, :x.shape[1]]
            total += self._train_batch(x.astype(self.rnn_.dtype, copy=False), lengths,
                                       target) * len(part)
        return total / max(1, len(order))

    def _validation_split(self, seqs, targets, rng):
        rows = np.arange(len(seqs))
        stratify = targets if isinstance(self, ClassifierMixin) else None
        seed = rng.randint(0, 2**31 - 1)
        try:
            train, valid = train_test_split(rows, test_size=self.validation_fraction,
                                            random_state=seed, stratify=stratify)
        except ValueError:        # a class too small to stratify, or too few rows
            if len(rows) < 2:
                raise ValueError(f"early_stopping needs at least 2 samples to set "
                                 f"validation_fraction={self.validation_fraction} of them "
                                 f"apart, got n_samples = {len(rows)}") from None
            train, valid = train_test_split(rows, test_size=self.validation_fraction,
                                            random_state=seed)
        return train, valid

    def _fit(self, X, y, *, partial, classes=None):
        first = not partial or not hasattr(self, "rnn_")
        seqs, targets, n_outputs = self._validate_fit_data(X, y, first=first, classes=classes)
        rng = check_random_state(self.random_state)
        if first:
            self._build(seqs.padded.shape[2], n_outputs, rng)
        else:
            self._check_params()
        self._run_epochs(seqs, targets, 1 if partial else self.max_epochs,
                         early_stopping=self.early_stopping and not partial, rng=rng)
        return self

    def fit(self, X, y):
        """Builds a new model and trains it for max_epochs epochs (fewer with
        early_stopping, which keeps the weights of the best validation loss).

        X: (n_samples, T, n_features), a list of (T_i, n_features) arrays, or
        (n_samples, n_features) (one-step sequences). Returns self."""
        return self._fit(X, y, partial=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class RNNRegressor(RegressorMixin, _RNNEstimator):
    """A recurrent network regressor: one target vector per sequence, or per
    step when y has a time axis (see the module's docstring for the forms of
    X and y).

    Parameters
    ----------
    cell : "lstm", "gru" or "rnn" (tanh Elman), default "lstm"
    hidden_size : int, default 32
    num_layers : int, default 1
    bidirectional : bool, default False
    dropout : float in [0, 1), default 0
        Between recurrent layers and before the output layer, in training.
    lr, weight_decay : Adam's learning rate and L2 penalty (cyrnn.optim.Adam)
    clip : float or None
        Largest gradient norm (cyrnn.optim.clip_grad_norm), None for no clipping.
    max_epochs : int, default 50
    batch_size : int, default 32
    shuffle : bool, default True
        Draw each epoch's minibatches in a new random order.
    early_stopping : bool, default False
        Set validation_fraction of the training sequences apart, stop when
        their loss has not improved by tol for n_iter_no_change epochs, and
        keep the weights of the best epoch.
    validation_fraction, n_iter_no_change, tol : see early_stopping
    dtype : "float32" (default) or "float64", the model's dtype
    random_state : None, int or RandomState
        Initial weights, dropout masks, minibatch order, validation split.
    verbose : int
        > 0 shows a progress bar over the epochs (tqdm's when installed).

    Attributes
    ----------
    rnn_ : cyrnn.LSTM, GRU or RNN (batch_first=True)
    head_ : cyrnn.Linear, the output layer
    optimizer_ : cyrnn.optim.Adam
    n_features_in_ : features per step
    n_outputs_ : targets per sequence (or per step)
    per_step_ : whether the targets were per step (many-to-many)
    loss_curve_ : mean training loss per epoch
    validation_loss_curve_ : validation loss per epoch (early_stopping)
    best_validation_loss_ : the best of them (early_stopping)
    n_iter_ : epochs trained (partial_fit counts one)
    """

    def _loss(self, out, target, lengths):
        return losses.mse(out, target, lengths=lengths if self._per_step else None,
                          batch_first=True)

    @property
    def _per_step(self):
        return self.per_step_

    def _validate_fit_data(self, X, y, *, first, classes=None):
        validate_data(self, X=X, y=y, reset=first, skip_check_array=True, ensure_2d=False)
        seqs = _check_sequences(self, X, reset=first)
        targets, per_step, y_1d = self._check_targets(seqs, y)
        if first:
            self.per_step_ = per_step
            self.n_outputs_ = targets.shape[-1]
            self._y_1d = y_1d
        elif per_step != self.per_step_ or targets.shape[-1] != self.n_outputs_:
            raise ValueError(f"y must have the form of the first fit: "
                             f"{'per step' if self.per_step_ else 'per sequence'} with "
                             f"{self.n_outputs_} outputs; got "
                             f"{'per step' if per_step else 'per sequence'} with "
                             f"{targets.shape[-1]}")
        return seqs, targets, self.n_outputs_

    def _check_targets(self, seqs, y):
        """(targets float64, per_step, y_1d): targets (n, k), or per step
        (n, T, k) padded with zeros."""
        n = len(seqs)
        if seqs.form == "list" and isinstance(y, (list, tuple)) and len(y) == n and n \
                and all(np.ndim(v) in (1, 2) for v in y) \
                and all(np.shape(v)[0] == length for v, length in zip(y, seqs.lengths)):
            parts = [check_array(v, ensure_2d=False, dtype=np.float64, input_name=f"y[{i}]",
                                 estimator=self) for i, v in enumerate(y)]
            y_1d = parts[0].ndim == 1
            parts = [p.reshape(len(p), -1) for p in parts]
            k = parts[0].shape[1]
            if any(p.shape[1] != k for p in parts):
                raise ValueError("every y[i] must have the same number of outputs per step")
            targets = np.zeros((n, seqs.padded.shape[1], k))
            for i, p in enumerate(parts):
                targets[i, :len(p)] = p
            return targets, True, y_1d
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=np.float64, input_name="y",
                        estimator=self)
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {n}, y has {y.shape[0]}")
        if y.ndim == 3:
            if seqs.form == "list":
                raise ValueError("with a list X, per-step targets must be a list of "
                                 "(T_i,) or (T_i, n_outputs) arrays, one per sequence")
            if y.shape[1] != seqs.padded.shape[1]:
                raise ValueError(f"per-step y must have shape (n_samples, T, n_outputs) with "
                                 f"T = {seqs.padded.shape[1]} as X, got {y.shape}")
            return y, True, False
        if y.ndim > 3:
            raise ValueError(f"y must be (n_samples,), (n_samples, n_outputs) or, per step, "
                             f"(n_samples, T, n_outputs); got shape {y.shape}")
        return y.reshape(n, -1), False, y.ndim == 1

    def partial_fit(self, X, y):
        """One epoch over (X, y): builds the model at the first call, then
        continues training it (with the optimizer's state). Returns self."""
        return self._fit(X, y, partial=True)

    def _validation_loss(self, seqs, targets, rows):
        out = self._outputs(seqs, rows)
        lengths = seqs.lengths[rows] if self._per_step else None
        return float(losses.mse(out, targets[rows], lengths=lengths, batch_first=True)[0])

    def predict(self, X):
        """(n_samples,) or (n_samples, n_outputs) per sequence; per step
        (n_samples, T, n_outputs), or a list of (T_i,)/(T_i, n_outputs)
        arrays for a list X."""
        check_is_fitted(self)
        seqs = _check_sequences(self, X, reset=False)
        out = self._outputs(seqs)
        if self._y_1d:
            out = out[..., 0]
        return _same_form(seqs, out) if self.per_step_ else out

    def score(self, X, y, sample_weight=None):
        """R^2 of the predictions (scikit-learn's r2_score, averaged over
        outputs); per step, over every step of every sequence."""
        if not getattr(self, "per_step_", False):
            return super().score(X, y, sample_weight=sample_weight)
        seqs = _check_sequences(self, X, reset=False)
        targets, per_step, _ = self._check_targets(seqs, y)
        if not per_step:
            raise ValueError("this regressor predicts per step: y must have a time axis")
        out = self._outputs(seqs)
        mask = np.arange(seqs.padded.shape[1])[None, :] < seqs.lengths[:, None]
        weights = None if sample_weight is None else \
            np.broadcast_to(np.asarray(sample_weight, dtype=np.float64)[:, None], mask.shape)[mask]
        return r2_score(targets[mask], out[mask], sample_weight=weights)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class RNNClassifier(ClassifierMixin, _RNNEstimator):
    """A recurrent network classifier: one label per sequence, read from the
    last layer's final hidden state (both directions' when bidirectional)
    through a Linear layer and a softmax. Parameters and attributes are
    RNNRegressor's, with classes_ (the labels, sorted) instead of n_outputs_
    and per_step_."""

    _per_step = False

    def _loss(self, out, target, lengths):
        return losses.softmax_cross_entropy(out, target)

    def _validate_fit_data(self, X, y, *, first, classes=None):
        validate_data(self, X=X, y=y, reset=first, skip_check_array=True, ensure_2d=False)
        seqs = _check_sequences(self, X, reset=first)
        y = column_or_1d(y, warn=True)
        assert_all_finite(y, input_name="y")
        if y.shape[0] != len(seqs):
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {len(seqs)}, y has {y.shape[0]}")
        check_classification_targets(y)
        if first:
            if classes is not None:
                classes = np.asarray(classes)
                check_classification_targets(classes)
                self.classes_ = np.unique(classes)
            else:
                self.classes_ = np.unique(y)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the classes of the first "
                             f"call to partial_fit, {self.classes_!r}")
        codes = np.searchsorted(self.classes_, y)
        codes = np.minimum(codes, len(self.classes_) - 1)
        unseen = self.classes_[codes] != y
        if unseen.any():
            raise ValueError(f"y has labels that are not in classes_ {self.classes_!r}: "
                             f"{np.unique(y[unseen])!r}")
        return seqs, codes.astype(np.intp), len(self.classes_)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y). The first call builds the model and must be
        given every class (classes=, as SGDClassifier), unless y already has
        them all. Returns self."""
        if classes is None and not hasattr(self, "rnn_"):
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, partial=True, classes=classes)

    def _validation_loss(self, seqs, targets, rows):
        return float(losses.softmax_cross_entropy(self._outputs(seqs, rows), targets[rows])[0])

    def predict_log_proba(self, X):
        check_is_fitted(self)
        logits = self._outputs(_check_sequences(self, X, reset=False))
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """(n_samples, n_classes): the softmax of the network's outputs,
        columns in the order of classes_."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable label of each sequence."""
        check_is_fitted(self)
        logits = self._outputs(_check_sequences(self, X, reset=False))
        return self.classes_[np.argmax(logits, axis=1)]


class SequenceScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardises each feature over every step of every sequence: (x -
    mean_) / scale_ with one mean and scale per feature, as StandardScaler
    does for tabular rows. X and the result have the same form: an array
    (n_samples, T, n_features), a list of (T_i, n_features) arrays (only
    real steps count), or (n_samples, n_features). float32 stays float32.

    A feature that never varies gets scale_ 1."""

    def __init__(self, *, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X, y=None):
        check_bool("with_mean", self.with_mean)
        check_bool("with_std", self.with_std)
        seqs = _check_sequences(self, X, reset=True)
        steps = self._steps(seqs).astype(np.float64)
        self.n_samples_seen_ = steps.shape[0]
        self.mean_ = steps.mean(axis=0) if self.with_mean else None
        if self.with_std:
            self.var_ = steps.var(axis=0)
            scale = np.sqrt(self.var_)
            # as scikit-learn's StandardScaler: a constant feature is left unscaled
            tiny = scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(steps).max(0))
            self.scale_ = np.where(tiny, 1.0, scale)
        else:
            self.var_ = self.scale_ = None
        return self

    @staticmethod
    def _steps(seqs):
        mask = np.arange(seqs.padded.shape[1])[None, :] < seqs.lengths[:, None]
        return seqs.padded[mask]

    def _apply(self, X, inverse):
        check_is_fitted(self)
        seqs = _check_sequences(self, X, reset=False)
        out = seqs.padded.copy()
        dtype = out.dtype
        mean = 0.0 if self.mean_ is None else self.mean_.astype(dtype)
        scale = 1.0 if self.scale_ is None else self.scale_.astype(dtype)
        out = out * scale + mean if inverse else (out - mean) / scale
        out = out.astype(dtype, copy=False)
        if seqs.form == "2d":
            return out[:, 0, :]
        if seqs.form == "list":
            return [out[i, :length] for i, length in enumerate(seqs.lengths)]
        return out

    def transform(self, X):
        return self._apply(X, inverse=False)

    def inverse_transform(self, X):
        return self._apply(X, inverse=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.requires_fit = True
        return tags
