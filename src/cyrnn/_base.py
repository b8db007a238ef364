"""The machinery every recurrent layer shares: parameters in torch's layout,
validation, packing, buffer allocation and the calls into the time loops.
A cell kind only contributes its entry of the registry (_cells.py)."""
import threading
import warnings
from typing import NamedTuple

import numpy as np

from cyrnn import _bptt, _forward, _plan
from cyrnn._cells import direction_suffix
from cyrnn._cpu import blas_runs_products
from cyrnn._packing import SequenceLayout
from cyrnn._packed_cache import DirectionWeights, PackedWeightCache
from cyrnn._plan import DirectionBuffers, DirectionGradients, LayerBuffers, LayerGradients
from cyrnn._streaming import Stream
from cyrnn._workspace import Workspace, aligned_empty, aligned_zeros
from cyrnn._parameters import ParameterOwner
from cyrnn._threads import get_num_threads
from cyrnn._tape import Gradients, Tape
from cyrnn._validation import (
    BLAS_INT_MAX, as_real_array, check_bool, check_dtype, check_int, check_probability,
    check_seed, check_shape, real_array)

_MAX_ELEMENTS = np.iinfo(np.intp).max // 8  # bound on T * B * widest, per call


class ForwardCall(NamedTuple):
    """A forward call's checked inputs: x as given and packed, its layout and
    the initial states (sorted in packed order, fresh: the loops write the
    final states into them)."""
    x: np.ndarray
    x_packed: np.ndarray
    layout: SequenceLayout
    unbatched: bool
    h: np.ndarray
    c: object


class RecurrentLayer(ParameterOwner):
    """Base of LSTM, GRU and RNN; not meant to be built directly."""

    _tape_class = Tape
    stateful = True  # the layer protocol (cyrnn.sequential): carries a state

    def _configure(self, cell, input_size, hidden_size, num_layers, *, bias,
                   batch_first, dropout, bidirectional, proj_size, dtype, seed,
                   reverse=False):
        self._cell = cell
        self._input_size = check_int("input_size", input_size)
        self._hidden_size = check_int("hidden_size", hidden_size)
        self._num_layers = check_int("num_layers", num_layers)
        self._bias = check_bool("bias", bias)
        self._batch_first = check_bool("batch_first", batch_first)
        self._dropout = check_probability("dropout", dropout)
        self._bidirectional = check_bool("bidirectional", bidirectional)
        self._reverse = check_bool("reverse", reverse)
        if self._reverse and self._bidirectional:
            raise ValueError("reverse=True runs the one direction of a layer from the last "
                             "step to the first; a bidirectional layer has both already")
        if self._dropout and self._num_layers == 1:
            warnings.warn(  # torch's warning, in its words
                f"dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={self._dropout} "
                f"and num_layers={self._num_layers}", UserWarning, stacklevel=3)
        self._proj_size = check_int("proj_size", proj_size, minimum=0)
        if self._proj_size >= self._hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({self._hidden_size}), "
                f"got {self._proj_size}")
        self._dtype = check_dtype(dtype)
        self._rng = np.random.default_rng(check_seed(seed))
        self._init_parameter_state(self._initial_parameters())
        self._init_call_constants()

    _TRANSIENT = ParameterOwner._TRANSIENT + ("_rng_lock", "_workspace", "_packed_cache")

    def _rebuild_transient(self):
        super()._rebuild_transient()
        self._rng_lock = threading.Lock()
        self._workspace = Workspace()
        self._packed_cache = PackedWeightCache()

    def _init_call_constants(self):
        """What every call would otherwise work out again from the
        configuration, which never changes once built."""
        cell, H, Hout, D = self._cell, self._hidden_size, self._out_size, self._directions
        self._widest = max(self._input_size, D * Hout, cell.gates * H)
        self._param_shapes = self._parameter_shapes()
        in_sizes = [self._input_size] + [D * Hout] * (self._num_layers - 1)
        self._packed_forward_sizes = [
            _plan.packed_size(cell, H, Hout, in_size, self._dtype, False) for in_size in in_sizes]
        self._packed_transposed_sizes = [
            _plan.packed_size(cell, H, Hout, in_size, self._dtype, True) for in_size in in_sizes]
        self._direction_suffixes = {
            (layer, direction): direction_suffix(layer, direction)
            for layer in range(self._num_layers) for direction in range(D)}
        self._bind_parameters()

    def _bind_parameters(self):
        """(layer, direction) -> its DirectionWeights. _params arrays are
        written in place and rebound only by tie(), which calls this again:
        these stay live."""
        p = self._params
        self._direction_weights = {}
        for (layer, direction), sfx in self._direction_suffixes.items():
            self._direction_weights[layer, direction] = DirectionWeights(
                w_ih=p["weight_ih" + sfx], w_hh=p["weight_hh" + sfx],
                b_ih=p.get("bias_ih" + sfx), b_hh=p.get("bias_hh" + sfx),
                w_hr=p.get("weight_hr" + sfx), peephole=p.get("weight_peephole" + sfx))

    # -- configuration, read-only once built -------------------------------
    input_size = property(lambda self: self._input_size)
    hidden_size = property(lambda self: self._hidden_size)
    num_layers = property(lambda self: self._num_layers)
    bias = property(lambda self: self._bias)
    batch_first = property(lambda self: self._batch_first)
    dropout = property(lambda self: self._dropout)
    bidirectional = property(lambda self: self._bidirectional)
    reverse = property(lambda self: self._reverse,
                       doc="Whether the layer's one direction runs from the last step to "
                           "the first (ONNX's direction='reverse').")
    proj_size = property(lambda self: self._proj_size)
    dtype = property(lambda self: self._dtype)
    output_size = property(lambda self: self._directions * self._out_size,
                           doc="Features of y's last axis: D * (proj_size or hidden_size).")

    @property
    def _owner_name(self):
        return self._cell.layer

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
                              ("bidirectional", False), ("reverse", False), ("proj_size", 0)):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)!r}")
        options += self._extra_repr()
        options.append(f"dtype={self._dtype.name}")
        return f"{self._cell.layer}({', '.join(options)})"

    def _extra_repr(self):
        return []

    # -- parameters --------------------------------------------------------
    def _parameter_shapes(self):
        """name -> shape, in torch's names and order."""
        return self._cell.parameter_shapes(
            self._input_size, self._hidden_size, self._num_layers, bias=self._bias,
            bidirectional=self._bidirectional, proj_size=self._proj_size)

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
                    np.zeros(H, dtype=self._dtype) if self._cell.bias_hn_apart else None)
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
            raise TypeError(f"{name} must be a pair {what} for {self._cell.layer}, "
                            f"got {type(value).__name__}")
        return value

    def _reject_pair(self, name, value):
        """Single-state cells take one array; a tuple of two arrays (the LSTM
        form) is refused rather than read as a stacked array."""
        if isinstance(value, tuple) and len(value) == 2 and \
                any(part is None or isinstance(part, np.ndarray) for part in value):
            raise TypeError(f"{name} must be one array for {self._cell.layer}, not a pair")

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

    # -- forward -----------------------------------------------------------
    def _forward(self, x, hx, lengths, training):
        call = self._forward_call(x, hx, lengths, training)
        tape_scratch = _TapeScratch(self._workspace, self._dtype) if training else None
        layers, new_packings = self._forward_layers(call, tape_scratch)
        products = self._products_scratch(call.layout.batch_sizes[0])
        _forward.run(self._cell, training, self._reverse, call.layout.batch_sizes,
                     call.layout.offsets, self._hidden_size, self._out_size, layers,
                     self._dtype, get_num_threads(), products)
        self._workspace.give("products", products)
        if training:
            self._strip_weights(layers)
        else:
            self._packed_cache.store(entry for entry in new_packings if entry is not None)
        return self._forward_outputs(call, layers, tape_scratch)

    def _products_scratch(self, batch):
        """The scratch of the products BLAS runs in place of the step
        kernel's (_cpu.blas_runs_products), or None where it does not."""
        if not blas_runs_products():
            return None
        size = _plan.products_size(self._cell, self._hidden_size, int(batch))
        return self._workspace.take("products", (size,), self._dtype)

    def _forward_call(self, x, hx, lengths, training):
        x, x_tm, unbatched = self._check_input(x)
        T, B = x_tm.shape[:2]
        lengths = self._check_lengths(lengths, T, B, unbatched)
        layout = SequenceLayout.full(T, B) if lengths is None else SequenceLayout(T, B, lengths)
        h, c = self._check_states("hx", hx, layout, B, unbatched, "(h0, c0)")
        return ForwardCall(x, layout.pack(x_tm, self._dtype, copy=training), layout,
                           unbatched, h, c)

    def _forward_layers(self, call, tape_scratch):
        """A LayerBuffers per layer, and for inference the packings it makes
        for the cache (None where the cache had one)."""
        N, B, D = call.layout.N, call.layout.B, self._directions
        width = D * self._out_size
        training = tape_scratch is not None
        masks = self._dropout_masks(N) if training else [None] * self._num_layers
        scratch = None if training else self._inference_scratch(B)
        layers, new_packings, layer_input = [], [], call.x_packed
        for layer in range(self._num_layers):
            # The last layer's y is returned to the caller; the others are internal.
            y = aligned_empty((N, width), self._dtype) \
                if layer == self._num_layers - 1 or not training \
                else tape_scratch.take(f"y{layer}", (N, width))
            dirs = []
            for direction in range(D):
                k = layer * D + direction
                h, c = call.h[k], None if call.c is None else call.c[k]
                if training:
                    dirs.append(self._training_direction(layer, direction, N, tape_scratch,
                                                         h, c))
                else:
                    buffers, entry = self._inference_direction(layer, direction, h, c,
                                                               scratch)
                    dirs.append(buffers)
                    new_packings.append(entry)
            layers.append(LayerBuffers(x=layer_input, y=y, mask=masks[layer], dirs=dirs))
            layer_input = y
        return layers, new_packings

    def _inference_scratch(self, B):
        """Rows every direction of an inference pass shares: the projection's
        m, and a two-phase step's gates and extra."""
        H, dtype, cell = self._hidden_size, self._dtype, self._cell
        rows = (lambda width: aligned_empty((B, width), dtype))  # noqa: E731
        return _InferenceScratch(
            m=rows(H) if self._proj_size else None,
            gates=rows(cell.gates * H) if cell.reset_before else None,
            extra=rows(cell.extra * H) if cell.reset_before else None)

    def _inference_direction(self, layer, direction, h, c, scratch):
        """(DirectionBuffers, the cache entry it makes or None) of an
        inference pass: the cached packing of the weights if they have not
        changed (see _packed_cache.py)."""
        live = self._direction_weights[layer, direction]
        packing, entry = self._packed_cache.prepare(
            (layer, direction), live, self._packed_forward_sizes[layer], self._dtype,
            self._folded_biases)
        weights = packing.weights
        return DirectionBuffers(
            w_ih=weights.w_ih, w_hh=weights.w_hh, w_hr=live.w_hr, bias_x=packing.bias_x,
            bias_hn=packing.bias_hn, peephole=weights.peephole, packed=packing.packed,
            packed_ready=packing.ready, h=h, c=c, m=scratch.m, gates=scratch.gates,
            extra=scratch.extra), entry

    def _training_direction(self, layer, direction, N, tape_scratch, h, c):
        """DirectionBuffers of a training pass, with its tape. The tape keeps
        the weights forward used, so that an optimizer stepping parameters()
        in place before backward cannot mix old activations with new
        weights: W_hh and W_ih packed for BPTT by this pass, copies of W_hr
        and of the peephole weights."""
        w = self._direction_weights[layer, direction]
        cell, H, key = self._cell, self._hidden_size, f"{layer}.{direction}"
        bias_x, bias_hn = self._folded_biases(w.b_ih, w.b_hh)
        take = tape_scratch.take
        return DirectionBuffers(
            w_ih=w.w_ih, w_hh=w.w_hh, w_hr=_copy(w.w_hr), bias_x=bias_x, bias_hn=bias_hn,
            peephole=_copy(w.peephole), packed_ready=False,
            packed=self._workspace.take("packed" + key, (self._packed_forward_sizes[layer],),
                                        self._dtype),
            h=h, c=c, m=take("m" + key, (N, H)) if self._proj_size else None,
            transposed=take("transposed" + key, (self._packed_transposed_sizes[layer],)),
            gates=take("gates" + key, (N, cell.gates * H)),
            extra=take("extra" + key, (N, cell.extra * H)) if cell.extra else None,
            hprev=take("hprev" + key, (N, self._out_size)))

    def _strip_weights(self, layers):
        """The tape keeps no forward packing, and no reference to the live
        weights: BPTT has their transposed packing."""
        for layer, buffers in enumerate(layers):
            for direction, d in enumerate(buffers.dirs):
                self._workspace.give(f"packed{layer}.{direction}", d.packed)
                d.packed = d.w_ih = d.w_hh = d.bias_x = d.bias_hn = None

    def _forward_outputs(self, call, layers, tape_scratch):
        """(y, final states, tape or None) in the caller's layout."""
        layout, unbatched = call.layout, call.unbatched
        y = layout.unpack(layers[-1].y, self._batch_first and not unbatched)
        hn = layout.unsort_states(call.h)
        cn = None if call.c is None else layout.unsort_states(call.c)
        if unbatched:
            y, hn = y[:, 0, :], hn[:, 0, :]
            cn = None if cn is None else cn[:, 0, :]
        states = hn if cn is None else (hn, cn)
        if tape_scratch is None:
            return y, states, None
        tape = Tape(model=self, weights_version=self._weights_version, layout=layout,
                    layers=layers, x_shape=call.x.shape, y_shape=y.shape, hn_shape=hn.shape,
                    cn_shape=None if cn is None else cn.shape, unbatched=unbatched,
                    scratch=tape_scratch.taken)
        return y, states, tape

    # -- streaming ---------------------------------------------------------
    def stream(self, batch_size=1, hx=None):
        """A Stream: this layer fed one time step at a time, its state kept
        inside, for inference on data that arrives step by step (a sensor,
        a token generator). ``y = stream.step(x)`` takes x of shape
        (batch_size, input_size) and returns (batch_size, H_out); with
        batch_size=None, x is (input_size,) and y (H_out,). hx: the initial
        states, as this layer's hx (None: zeros); ``stream.state`` gives
        the current ones, ``stream.reset(hx)`` starts again.

        The outputs of a sequence's steps are the rows of
        ``model(sequence, hx)``'s y, to the bit, without a call's cost per
        step (its checks, allocations and look-up of the packed weights):
        a step checks x and runs the step kernels.

        The weights are packed once, now, from the layer's weights as they
        are now: changes made afterwards are not seen (make a new stream).
        No dropout (inference). A bidirectional or reverse layer cannot
        stream: its reverse direction starts from the end of the sequence."""
        if self._bidirectional or self._reverse:
            kind = "bidirectional" if self._bidirectional else "reverse=True"
            raise ValueError(f"a {kind} {self._cell.layer} cannot stream: its reverse "
                             f"direction reads the sequence from its end, which a stream "
                             f"has not seen yet")
        B = 1 if batch_size is None else check_int("batch_size", batch_size)
        if B * self._widest > _MAX_ELEMENTS:
            raise ValueError(f"batch_size is too large for this layer: {B}")
        h, c = self._check_states("hx", hx, SequenceLayout.full(1, B), B, batch_size is None,
                                  "(h0, c0)")
        layers, new_packings = self._stream_layers(B, h, c)
        stream = Stream(self, layers, h, c, batch_size)  # packs what the cache had not
        self._packed_cache.store(entry for entry in new_packings if entry is not None)
        return stream

    def _stream_layers(self, B, h, c):
        """The LayerBuffers of a one-step inference pass of B rows, which a
        stream runs at every step, and the packings it makes for the cache
        (None where the cache had one): as an inference pass's, with its
        own copy of W_hr too (a stream keeps the weights it was made with;
        the cache's packings are never changed, only replaced). Layer 0's x
        and the last layer's y are stand-ins: each step gives its own."""
        dtype, Hout = self._dtype, self._out_size
        scratch = self._inference_scratch(B)
        layers, new_packings = [], []
        layer_input = aligned_empty((B, self._input_size), dtype)
        for layer in range(self._num_layers):
            buffers, entry = self._inference_direction(
                layer, 0, h[layer], None if c is None else c[layer], scratch)
            buffers.w_hr = _copy(buffers.w_hr)
            y = aligned_empty((B, Hout), dtype)
            layers.append(LayerBuffers(x=layer_input, y=y, mask=None, dirs=[buffers]))
            new_packings.append(entry)
            layer_input = y
        return layers, new_packings

    # -- backward ----------------------------------------------------------
    def backward(self, tape, dy, dhn=None, *, input_grad=True):
        """BPTT: gradients of a scalar loss L from dy = dL/dy (None: the loss
        does not depend on y) and optionally dhn = dL/dh_n (for LSTM a pair
        (dh_n, dc_n), either part None). Returns Gradients(input, hx, params);
        nothing in the model or the tape changes, so a tape may be replayed.
        input_grad=False leaves out dL/dx (Gradients.input is None), as torch
        does for an input that does not require grad: a model's first layer,
        fed data, skips a product as large as the one by W_ih."""
        input_grad = check_bool("input_grad", input_grad)
        self._check_tape(tape)
        dy_packed = self._output_gradient(tape, dy)
        dh, dc = self._final_state_gradients(tape, dhn)
        grads = {name: aligned_empty(shape, self._dtype)
                 for name, shape in self._param_shapes.items()}
        scratch = self._bptt_scratch(tape)
        layers = self._gradient_layers(tape, scratch, dh, dc, grads, dy_packed, input_grad)
        _bptt.run(self._cell, self._reverse, tape.layout.batch_sizes, tape.layout.offsets,
                  self._hidden_size, self._out_size, layers, self._dtype, scratch.packed,
                  get_num_threads())
        self._give_back_scratch(scratch, layers)
        return self._gradients(tape, layers[0].dx, dh, dc, grads)

    def _output_gradient(self, tape, dy):
        """dy checked and packed as the tape's y."""
        if dy is None:
            dy = np.zeros(tape.y_shape, self._dtype)
        dy = as_real_array("dy", dy, self._dtype)
        check_shape("dy", dy, tape.y_shape, "y's shape")
        return tape.layout.pack(self._time_major("dy", dy, tape.unbatched), self._dtype)

    def _gradient_state(self, name, value, shape, layout, unbatched, meaning):
        if value is None:
            full = shape if not unbatched else (shape[0], 1, shape[1])
            return aligned_zeros(full, self._dtype)
        array = as_real_array(name, value, self._dtype)
        check_shape(name, array, shape, meaning)
        if unbatched:
            array = array[:, None, :]
        return layout.sort_states(array)

    def _final_state_gradients(self, tape, dhn):
        """(dh, dc or None): dL/dh_n (and dL/dc_n) checked, sorted in packed
        order, fresh (BPTT turns them into the initial states' gradients)."""
        if self._cell.has_cell_state:
            dh_n, dc_n = self._split_pair("dhn", dhn, "(dh_n, dc_n)")
            dh_name = "dhn[0]"
        else:
            self._reject_pair("dhn", dhn)
            dh_n, dc_n, dh_name = dhn, None, "dhn"
        dh = self._gradient_state(dh_name, dh_n, tape.hn_shape, tape.layout, tape.unbatched,
                                  "h_n's shape")
        dc = (self._gradient_state("dhn[1]", dc_n, tape.cn_shape, tape.layout, tape.unbatched,
                                   "c_n's shape")
              if self._cell.has_cell_state else None)
        return dh, dc

    def _bptt_scratch(self, tape):
        """BPTT's scratch, from the workspace. The pre-activations' gradients
        go a chunk of steps at a time, in rows padded past G*H; a cell that
        splits them keeps the recurrent side (dgh) apart from the input side
        (dgx)."""
        ws, dtype, layout = self._workspace, self._dtype, tape.layout
        H, Hout = self._hidden_size, self._out_size
        rows = (_plan.gradient_rows(layout.B),
                _plan.gate_gradient_width(self._cell, H, dtype))
        dgx = ws.take("dgx", rows, dtype)
        projection = bool(self._proj_size)
        in_sizes = [layer.x.shape[1] for layer in tape.layers]
        return _BpttScratch(
            dgx=dgx, dgh=ws.take("dgh", rows, dtype) if self._cell.split_gradients else dgx,
            dhall=ws.take("dhall", (layout.N, Hout), dtype) if projection else None,
            dm=aligned_empty((layout.B, H), dtype) if projection else None,
            packed=ws.take("packed_backward", (_plan.gradient_scratch_size(
                self._cell, Hout, in_sizes, layout.B, dtype),), dtype))

    def _gradient_layers(self, tape, scratch, dh, dc, grads, dy_packed, input_grad):
        """A LayerGradients per layer: only the first layer's dx reaches the
        caller (None: not wanted, and not computed), the others are scratch;
        each layer's dy is the dx of the layer above it."""
        D, N = self._directions, tape.layout.N
        layers = []
        for layer, forward in enumerate(tape.layers):
            shape = (N, forward.x.shape[1])
            if layer > 0:
                dx = self._workspace.take(f"dx{layer}", shape, self._dtype)
            else:
                dx = aligned_empty(shape, self._dtype) if input_grad else None
            dirs = [self._direction_gradients(forward.dirs[d], layer, d, scratch,
                                              dh[layer * D + d],
                                              None if dc is None else dc[layer * D + d], grads)
                    for d in range(D)]
            layers.append(LayerGradients(forward=forward, dx=dx, dy=None, dirs=dirs))
        for layer, gradients in enumerate(layers):
            gradients.dy = layers[layer + 1].dx if layer + 1 < len(layers) else dy_packed
        return layers

    def _direction_gradients(self, forward, layer, direction, scratch, dh, dc, grads):
        sfx = self._direction_suffixes[layer, direction]
        return DirectionGradients(
            forward=forward, dgx=scratch.dgx, dgh=scratch.dgh, dhall=scratch.dhall,
            dm=scratch.dm, dh=dh, dc=dc, dw_ih=grads["weight_ih" + sfx],
            dw_hh=grads["weight_hh" + sfx], db_ih=grads.get("bias_ih" + sfx),
            db_hh=grads.get("bias_hh" + sfx), dw_hr=grads.get("weight_hr" + sfx),
            dpeephole=grads.get("weight_peephole" + sfx))

    def _give_back_scratch(self, scratch, layers):
        ws = self._workspace
        for name, array in (("dgx", scratch.dgx), ("dhall", scratch.dhall),
                            ("packed_backward", scratch.packed)):
            ws.give(name, array)
        if scratch.dgh is not scratch.dgx:
            ws.give("dgh", scratch.dgh)
        for layer in range(1, len(layers)):
            ws.give(f"dx{layer}", layers[layer].dx)

    def _gradients(self, tape, dx_packed, dh, dc, grads):
        """Gradients in the caller's layout."""
        layout = tape.layout
        dx = None if dx_packed is None else layout.unpack(
            dx_packed, self._batch_first and not tape.unbatched)
        dh0 = layout.unsort_states(dh)
        dc0 = None if dc is None else layout.unsort_states(dc)
        if tape.unbatched:
            dx = None if dx is None else dx[:, 0, :]
            dh0 = dh0[:, 0, :]
            dc0 = None if dc0 is None else dc0[:, 0, :]
        return Gradients(input=dx, hx=dh0 if dc0 is None else (dh0, dc0), params=grads)


class _TapeScratch:
    """The arrays of a training pass's tape, from the model's workspace,
    listed so that the tape gives them back when it is dropped."""

    def __init__(self, workspace, dtype):
        self._workspace, self._dtype, self.taken = workspace, dtype, []

    def take(self, name, shape):
        array = self._workspace.take(name, shape, self._dtype)
        self.taken.append((name, array))
        return array


class _InferenceScratch(NamedTuple):
    m: object
    gates: object
    extra: object


class _BpttScratch(NamedTuple):
    dgx: np.ndarray
    dgh: np.ndarray
    dhall: object
    dm: object
    packed: np.ndarray


def _copy(array):
    return None if array is None else array.copy()
