"""The machinery every recurrent layer shares: parameters in torch's layout,
validation, packing, buffer allocation and the calls into the time loops.
A cell kind only contributes its CellSpec (see _cells.py)."""
import threading
from functools import partial

import numpy as np

from cyrnn import _recurrence
from cyrnn._packing import SequenceLayout
from cyrnn._packed_cache import PackedWeightCache
from cyrnn._workspace import Workspace, aligned_empty, aligned_zeros
from cyrnn._parameters import ParameterOwner
from cyrnn._threads import get_num_threads
from cyrnn._tape import Gradients, Tape
from cyrnn._validation import (
    BLAS_INT_MAX, as_real_array, check_bool, check_dtype, check_int, check_probability,
    check_seed, check_shape, real_array)

_MAX_ELEMENTS = np.iinfo(np.intp).max // 8  # bound on T * B * widest, per call


class RecurrentLayer(ParameterOwner):
    """Base of LSTM, GRU and RNN; not meant to be built directly."""

    _tape_class = Tape

    def _configure(self, cell, input_size, hidden_size, num_layers, *, bias,
                   batch_first, dropout, bidirectional, proj_size, dtype, seed):
        self._cell = cell
        self._input_size = check_int("input_size", input_size)
        self._hidden_size = check_int("hidden_size", hidden_size)
        self._num_layers = check_int("num_layers", num_layers)
        self._bias = check_bool("bias", bias)
        self._batch_first = check_bool("batch_first", batch_first)
        self._dropout = check_probability("dropout", dropout)
        self._bidirectional = check_bool("bidirectional", bidirectional)
        self._proj_size = check_int("proj_size", proj_size, minimum=0)
        if self._proj_size >= self._hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({self._hidden_size}), "
                f"got {self._proj_size}")
        self._dtype = check_dtype(dtype)
        self._rng = np.random.default_rng(check_seed(seed))
        self._rng_lock = threading.Lock()
        self._workspace = Workspace()
        self._packed_cache = PackedWeightCache()
        self._init_parameter_state(self._initial_parameters())
        self._init_call_constants()

    def _init_call_constants(self):
        """What every call would otherwise work out again from the
        configuration, which never changes once built."""
        G, H, Hout, D = self._cell.gates, self._hidden_size, self._out_size, self._directions
        self._widest = max(self._input_size, D * Hout, G * H)
        self._is_gru = self._cell.kind == _recurrence.CellKind.GRU
        self._extra_width = _recurrence.extra_width(self._cell.kind, H)
        self._param_shapes = self._parameter_shapes()
        in_sizes = [self._input_size] + [D * Hout] * (self._num_layers - 1)
        self._packed_forward_sizes = [
            _recurrence.packed_size(self._cell.kind, H, Hout, self._dtype, False, in_size)
            for in_size in in_sizes]
        self._packed_transposed_sizes = [
            _recurrence.packed_size(self._cell.kind, H, Hout, self._dtype, True, in_size)
            for in_size in in_sizes]
        # (layer, direction) -> (its parameter names' suffix, a dict of its
        # weights and biases, None without). _params arrays are only written
        # in place, never rebound: these stay live.
        p = self._params
        self._direction_suffixes, self._direction_weights = {}, {}
        for layer in range(self._num_layers):
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                self._direction_suffixes[layer, direction] = sfx
                self._direction_weights[layer, direction] = dict(
                    w_ih=p["weight_ih" + sfx], w_hh=p["weight_hh" + sfx],
                    w_hr=p.get("weight_hr" + sfx), b_ih=p.get("bias_ih" + sfx),
                    b_hh=p.get("bias_hh" + sfx))

    # -- configuration, read-only once built -------------------------------
    input_size = property(lambda self: self._input_size)
    hidden_size = property(lambda self: self._hidden_size)
    num_layers = property(lambda self: self._num_layers)
    bias = property(lambda self: self._bias)
    batch_first = property(lambda self: self._batch_first)
    dropout = property(lambda self: self._dropout)
    bidirectional = property(lambda self: self._bidirectional)
    proj_size = property(lambda self: self._proj_size)
    dtype = property(lambda self: self._dtype)

    @property
    def _owner_name(self):
        return self._cell.name

    @property
    def _directions(self):
        return 2 if self._bidirectional else 1

    @property
    def _out_size(self):
        return self._proj_size or self._hidden_size

    def __repr__(self):
        options = [f"{self._input_size}", f"{self._hidden_size}"]
        if self._num_layers != 1:
            options.append(f"num_layers={self._num_layers}")
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0)):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)!r}")
        options += self._extra_repr()
        options.append(f"dtype={self._dtype.name}")
        return f"{self._cell.name}({', '.join(options)})"

    def _extra_repr(self):
        return []

    # -- parameters --------------------------------------------------------
    def _parameter_shapes(self):
        """name -> shape, in torch's names and order."""
        G, H, Hout, D = self._cell.gates, self._hidden_size, self._out_size, self._directions
        shapes = {}
        for layer in range(self._num_layers):
            in_size = self._input_size if layer == 0 else D * Hout
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes["weight_ih" + sfx] = (G * H, in_size)
                shapes["weight_hh" + sfx] = (G * H, Hout)
                if self._bias:
                    shapes["bias_ih" + sfx] = (G * H,)
                    shapes["bias_hh" + sfx] = (G * H,)
                if self._proj_size:
                    shapes["weight_hr" + sfx] = (Hout, H)
        return shapes

    def _initial_parameters(self):
        # torch's default: every parameter from U(-1/sqrt(H), 1/sqrt(H))
        bound = 1.0 / np.sqrt(self._hidden_size)
        return {name: self._rng.uniform(-bound, bound, size=shape).astype(self._dtype)
                for name, shape in self._parameter_shapes().items()}

    def _folded_biases(self, b_ih, b_hh):
        """(bias_x, bias_hn) of the time loops from a direction's biases (None
        without): see CellSpec.folded_biases."""
        H = self._hidden_size
        if b_ih is None:
            return (np.zeros(self._cell.gates * H, dtype=self._dtype),
                    np.zeros(H, dtype=self._dtype) if self._is_gru else None)
        return self._cell.folded_biases(b_ih, b_hh, H)

    # -- inputs ------------------------------------------------------------
    def _time_major(self, name, array, unbatched):
        if unbatched:
            return array[:, None, :]
        return array.transpose(1, 0, 2) if self._batch_first else array

    def _check_input(self, x):
        x = real_array("x", x)
        layout = "(B, T, input_size)" if self._batch_first else "(T, B, input_size)"
        if x.ndim not in (2, 3):
            raise ValueError(f"x must have shape {layout} or, unbatched, (T, input_size) "
                             f"with input_size={self._input_size}; got shape {x.shape}")
        if x.shape[-1] != self._input_size:
            raise ValueError(f"x must have input_size={self._input_size} features in its last "
                             f"axis, shape {layout}; got shape {x.shape}")
        unbatched = x.ndim == 2
        x_tm = self._time_major("x", x, unbatched)
        T, B = x_tm.shape[:2]
        if T == 0 or B == 0:
            raise ValueError(f"x must have at least one time step and one sequence; "
                             f"got shape {x.shape}")
        if T * B > BLAS_INT_MAX or T * B * self._widest > _MAX_ELEMENTS:
            raise ValueError(f"x has too many rows for BLAS's 32-bit ints: T*B = {T * B}")
        return x, x_tm.astype(self._dtype, copy=False), unbatched

    def _check_lengths(self, lengths, T, B, unbatched):
        if lengths is None:
            return None
        if unbatched:
            raise ValueError("lengths needs batched input; x is unbatched (T, input_size)")
        lengths = np.asarray(lengths)
        check_shape("lengths", lengths, (B,), "(B,)")
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must be an integer array of shape (B,) = ({B},), "
                            f"got dtype {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must lie in [1, T] = [1, {T}], "
                             f"got values from {lengths.min()} to {lengths.max()}")
        return lengths.astype(np.intp)

    def _state_shapes(self, B, unbatched):
        K = self._num_layers * self._directions
        h = (K, self._out_size) if unbatched else (K, B, self._out_size)
        c = (K, self._hidden_size) if unbatched else (K, B, self._hidden_size)
        return h, c

    def _check_state(self, name, value, shape, width, unbatched, layout):
        """One state array -> (K, B, F) sorted in packed order, fresh."""
        if value is None:
            return aligned_zeros(shape if len(shape) == 3 else (shape[0], 1, shape[1]),
                                 self._dtype)
        array = as_real_array(name, value, self._dtype)
        if array.shape != shape:  # the message is built only for a wrong shape
            check_shape(name, array, shape, "(num_layers*num_directions, {}{})".format(
                "" if unbatched else "B, ", width))
        if array.ndim == 2:
            array = array[:, None, :]
        return layout.sort_states(array)

    def _split_pair(self, name, value, what):
        """LSTM states come in pairs; either part may be None."""
        if value is None:
            return None, None
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a pair {what} for {self._cell.name}, "
                            f"got {type(value).__name__}")
        return value

    def _reject_pair(self, name, value):
        """Single-state cells take one array; a tuple of two arrays (the LSTM
        form) is refused rather than read as a stacked array."""
        if isinstance(value, tuple) and len(value) == 2 and \
                any(part is None or isinstance(part, np.ndarray) for part in value):
            raise TypeError(f"{name} must be one array for {self._cell.name}, not a pair")

    def _check_states(self, name, value, layout, B, unbatched, what):
        if value is None:  # what _check_state makes of None, without the rest
            K = self._num_layers * self._directions
            return (aligned_zeros((K, B, self._out_size), self._dtype),
                    aligned_zeros((K, B, self._hidden_size), self._dtype)
                    if self._cell.has_cell_state else None)
        h_shape, c_shape = self._state_shapes(B, unbatched)
        if self._cell.has_cell_state:
            h, c = self._split_pair(name, value, what)
            return (self._check_state(f"{name}[0]", h, h_shape, "H_out", unbatched, layout),
                    self._check_state(f"{name}[1]", c, c_shape, "hidden_size", unbatched, layout))
        self._reject_pair(name, value)
        return self._check_state(name, value, h_shape, "H_out", unbatched, layout), None

    # -- forward -----------------------------------------------------------
    def __call__(self, x, hx=None, *, lengths=None):
        """Inference: (y, h_n), or for LSTM (y, (h_n, c_n)). No dropout."""
        y, hn, _ = self._forward(x, hx, lengths, training=False)
        return y, hn

    def forward(self, x, hx=None, *, lengths=None):
        """Training forward: (y, h_n, tape); dropout between layers applies."""
        return self._forward(x, hx, lengths, training=True)

    def _dropout_masks(self, N):
        if not self._dropout or self._num_layers == 1:
            return [None] * self._num_layers
        keep = 1.0 - self._dropout
        width = self._directions * self._out_size
        with self._rng_lock:
            draws = [self._rng.random((N, width)) for _ in range(self._num_layers - 1)]
        return [((u < keep) / keep).astype(self._dtype) for u in draws] + [None]

    def _forward(self, x, hx, lengths, training):
        x, x_tm, unbatched = self._check_input(x)
        T, B = x_tm.shape[:2]
        lengths = self._check_lengths(lengths, T, B, unbatched)
        layout = SequenceLayout.full(T, B) if lengths is None else SequenceLayout(T, B, lengths)
        h_state, c_state = self._check_states("hx", hx, layout, B, unbatched, "(h0, c0)")
        x_packed = layout.pack(x_tm, self._dtype, copy=training)

        H, Hout, D = self._hidden_size, self._out_size, self._directions
        GH = self._cell.gates * H
        E = self._extra_width
        N = layout.N
        scratch_m = None if training or not self._proj_size else aligned_empty((B, H), self._dtype)
        masks = self._dropout_masks(N) if training else [None] * self._num_layers

        ws = self._workspace
        scratch = []  # (name, array) of the tape's internal buffers
        packings = []  # training: (params, workspace name) of the packed weights
        new_packings = []  # inference: cache entries made by this pass

        def tape_buffer(name, shape):
            if not training:
                return aligned_empty(shape, self._dtype)
            array = ws.take(name, shape, self._dtype)
            scratch.append((name, array))
            return array

        layers = []
        layer_input = x_packed
        for layer in range(self._num_layers):
            # The last layer's y is returned to the caller; the others are internal.
            last = layer == self._num_layers - 1
            y = aligned_empty((N, D * Hout), self._dtype) if last else \
                tape_buffer(f"y{layer}", (N, D * Hout))
            dirs = []
            for direction in range(D):
                params = dict(self._direction_weights[layer, direction])
                k = layer * D + direction
                key = f"{layer}.{direction}"
                if training:
                    # The tape keeps the weights forward used, so that an
                    # optimizer stepping parameters() in place before backward
                    # cannot mix old activations with new weights: W_hh and
                    # W_ih packed for BPTT by this pass, and a copy of W_hr.
                    params.update(transposed=tape_buffer(
                        "transposed" + key, (self._packed_transposed_sizes[layer],)))
                    if params["w_hr"] is not None:
                        params.update(w_hr=params["w_hr"].copy())
                size = self._packed_forward_sizes[layer]
                if training:
                    params.update(zip(("bias_x", "bias_hn"),
                                      self._folded_biases(params["b_ih"], params["b_hh"])))
                    params.update(packed=ws.take("packed" + key, (size,), self._dtype))
                    packings.append((params, "packed" + key))
                else:  # the biases are folded only if the cached packing is stale
                    new_packings.append(self._packed_cache.prepare(
                        (layer, direction), params, size, self._dtype, self._folded_biases))
                params.update(
                    gates=tape_buffer("gates" + key, (N, GH)) if training else None,
                    extra=tape_buffer("extra" + key, (N, E)) if training and E else None,
                    hprev=tape_buffer("hprev" + key, (N, Hout)) if training else None,
                    m=(tape_buffer("m" + key, (N, H)) if training else scratch_m)
                    if self._proj_size else None,
                    h=h_state[k], c=None if c_state is None else c_state[k])
                dirs.append(params)
            layers.append(dict(x=layer_input, y=y, mask=masks[layer], dirs=dirs))
            layer_input = y
        _recurrence.run(self._cell.kind, training, False, layout.batch_sizes, layout.offsets,
                        H, Hout, layers, self._dtype, None, get_num_threads())
        if new_packings:
            self._packed_cache.store(entry for entry in new_packings if entry is not None)
        for params, name in packings:
            # The tape keeps no forward packing, and no reference to the live
            # weights: BPTT has their transposed packing.
            ws.give(name, params.pop("packed"))
            del params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"]

        y = layout.unpack(layers[-1]["y"], self._batch_first and not unbatched)
        hn = layout.unsort_states(h_state)
        cn = None if c_state is None else layout.unsort_states(c_state)
        if unbatched:
            y, hn = y[:, 0, :], hn[:, 0, :]
            cn = None if cn is None else cn[:, 0, :]
        states = hn if cn is None else (hn, cn)
        if not training:
            return y, states, None
        tape = Tape(model=self, weights_version=self._weights_version, layout=layout,
                    layers=layers, x_shape=x.shape, y_shape=y.shape, hn_shape=hn.shape,
                    cn_shape=None if cn is None else cn.shape, unbatched=unbatched,
                    scratch=scratch)
        return y, states, tape

    # -- backward ----------------------------------------------------------
    def _gradient_state(self, name, value, shape, layout, unbatched, meaning):
        if value is None:
            full = shape if not unbatched else (shape[0], 1, shape[1])
            return aligned_zeros(full, self._dtype)
        array = as_real_array(name, value, self._dtype)
        check_shape(name, array, shape, meaning)
        if unbatched:
            array = array[:, None, :]
        return layout.sort_states(array)

    def backward(self, tape, dy, dhn=None):
        """BPTT: gradients of a scalar loss L from dy = dL/dy (None: the loss
        does not depend on y) and optionally dhn = dL/dh_n (for LSTM a pair
        (dh_n, dc_n), either part None). Returns Gradients(input, hx, params);
        nothing in the model or the tape changes, so a tape may be replayed."""
        self._check_tape(tape)
        layout = tape.layout
        if dy is None:
            dy = np.zeros(tape.y_shape, self._dtype)
        dy = as_real_array("dy", dy, self._dtype)
        check_shape("dy", dy, tape.y_shape, "y's shape")
        dy_packed = layout.pack(self._time_major("dy", dy, tape.unbatched), self._dtype)
        if self._cell.has_cell_state:
            dh_n, dc_n = self._split_pair("dhn", dhn, "(dh_n, dc_n)")
        else:
            self._reject_pair("dhn", dhn)
            dh_n, dc_n = dhn, None
        dh = self._gradient_state("dhn" + ("[0]" if self._cell.has_cell_state else ""),
                                  dh_n, tape.hn_shape, layout, tape.unbatched, "h_n's shape")
        dc = (self._gradient_state("dhn[1]", dc_n, tape.cn_shape, layout, tape.unbatched,
                                   "c_n's shape")
              if self._cell.has_cell_state else None)

        H, Hout, D, N, B = self._hidden_size, self._out_size, self._directions, layout.N, layout.B
        ws = self._workspace
        # The pre-activations' gradients, a chunk of steps at a time, in rows
        # padded past G*H; GRU keeps the recurrent side (dgh) apart from the
        # input side (dgx).
        rows = (_recurrence.gradient_rows(B),
                _recurrence.gate_gradient_width(self._cell.kind, H, self._dtype))
        gru = self._is_gru
        dgx = ws.take("dgx", rows, self._dtype)
        dgh = ws.take("dgh", rows, self._dtype) if gru else dgx
        dhall = ws.take("dhall", (N, Hout), self._dtype) if self._proj_size else None
        dm = aligned_empty((B, H), self._dtype) if self._proj_size else None
        grads = {name: aligned_empty(shape, self._dtype)
                 for name, shape in self._param_shapes.items()}

        layers = []
        for layer, fwd in enumerate(tape.layers):
            dirs = []
            for direction, fwd_dir in enumerate(fwd["dirs"]):
                sfx = self._direction_suffixes[layer, direction]
                k = layer * D + direction
                dirs.append(dict(
                    fwd_dir, dgx=dgx, dgh=dgh, dhall=dhall, dm=dm, dh=dh[k],
                    dc=None if dc is None else dc[k],
                    dw_ih=grads["weight_ih" + sfx], dw_hh=grads["weight_hh" + sfx],
                    db_ih=grads.get("bias_ih" + sfx), db_hh=grads.get("bias_hh" + sfx),
                    dw_hr=grads.get("weight_hr" + sfx)))
            # Only the first layer's dx reaches the caller; the others are scratch.
            dx = (aligned_empty if layer == 0 else partial(ws.take, f"dx{layer}"))(
                (N, fwd["x"].shape[1]), self._dtype)
            layers.append(dict(fwd, dirs=dirs, dx=dx))
        for layer in range(self._num_layers):
            upper = layers[layer + 1]["dx"] if layer + 1 < self._num_layers else dy_packed
            layers[layer]["dy"] = upper
        packed = ws.take("packed_backward", (_recurrence.gradient_scratch_size(
            Hout, [layer["x"].shape[1] for layer in tape.layers], B, self._dtype),), self._dtype)
        _recurrence.run(self._cell.kind, True, True, layout.batch_sizes, layout.offsets,
                        H, Hout, layers, self._dtype, packed, get_num_threads())
        for name, array in [("dgx", dgx), ("dhall", dhall), ("packed_backward", packed)] + \
                [(f"dx{layer}", layers[layer]["dx"]) for layer in range(1, self._num_layers)] + \
                ([("dgh", dgh)] if gru else []):
            ws.give(name, array)

        dx = layout.unpack(layers[0]["dx"], self._batch_first and not tape.unbatched)
        dh0 = layout.unsort_states(dh)
        dc0 = None if dc is None else layout.unsort_states(dc)
        if tape.unbatched:
            dx, dh0 = dx[:, 0, :], dh0[:, 0, :]
            dc0 = None if dc0 is None else dc0[:, 0, :]
        return Gradients(input=dx, hx=dh0 if dc0 is None else (dh0, dc0), params=grads)
