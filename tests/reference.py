"""The numpy reference of every cell: one layer and direction, forward and BPTT.

Plain per-step numpy written from torch's equations (gates i, f, g, o for the
LSTM; r, z, n for the GRU, with r applied to W_hn h + b_hn), to be read
against them. The batch is handled as torch's PackedSequence does: sorted by
length, longest first, step t computing the rows still running (a prefix).
The tests use it with `exact_products` (IEEE semantics: NaN * 0 is NaN,
whatever BLAS does); benchmarks/compare.py times it, with BLAS products, as
the plain-numpy peer.
"""
from dataclasses import dataclass

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def blas_products(a, w):
    """a @ w.T through BLAS."""
    return a @ w.T


def exact_products(a, w):
    """a @ w.T by explicit products and sums: IEEE semantics whatever BLAS
    does with NaN and Inf."""
    return (a[:, None, :] * w[None, :, :]).sum(axis=2)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


@dataclass
class Tape:
    """What BPTT needs of a forward pass: the sorted input and, per step,
    the values of that step's running rows."""
    x: np.ndarray
    steps: list
    reverse: bool


class Reference:
    """One layer and direction of `cell` ("LSTM", "GRU", "RNN_TANH",
    "RNN_RELU") with the weights in `params` (torch's names with `suffix`;
    biases optional, weight_hr for an LSTM's projection), on a batch whose
    sequences have `lengths` (None: all T steps)."""

    def __init__(self, cell, params, suffix="_l0", lengths=None, products=blas_products):
        if cell not in GATES:
            raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
        self.cell, self.products, self.suffix = cell, products, suffix
        self.w_ih, self.w_hh = params["weight_ih" + suffix], params["weight_hh" + suffix]
        GH = self.w_ih.shape[0]
        self.H = GH // GATES[cell]
        self.b_ih = params.get("bias_ih" + suffix, np.zeros(GH, self.w_ih.dtype))
        self.b_hh = params.get("bias_hh" + suffix, np.zeros(GH, self.w_ih.dtype))
        self.w_hr = params.get("weight_hr" + suffix)
        self.has_bias = "bias_ih" + suffix in params
        # b_hh joins the input projection, but for the GRU's b_hn, which r scales
        H = self.H
        self.bias_x = self.b_ih + self.b_hh
        if cell == "GRU":
            self.bias_x[2 * H:] = self.b_ih[2 * H:]
        self.b_hn = self.b_hh[2 * H:]
        self.lengths = None if lengths is None else np.asarray(lengths)

    # -- batch order -----------------------------------------------------
    def _order(self, B):
        """The batch's rows by length, longest first (None: as they are)."""
        return None if self.lengths is None else np.argsort(-self.lengths, kind="stable")

    @staticmethod
    def _sorted(a, order, axis):
        return a if order is None else np.take(a, order, axis=axis)

    @staticmethod
    def _unsorted(a, order, axis):
        return a if order is None else np.take(a, np.argsort(order), axis=axis)

    def _state_copies(self, h, c, order, B, dtype):
        """Sorted copies of a state (h, c), or of its gradient; None: zeros.
        c is None but for the LSTM."""
        def copy(a, width):
            return np.zeros((B, width), dtype) if a is None else \
                self._sorted(a, order, 0).astype(dtype)  # astype copies
        return copy(h, self.w_hh.shape[1]), copy(c, self.H) if self.cell == "LSTM" else None

    def _running(self, T, B, order):
        """Rows running at each step, in sorted order (a prefix)."""
        if order is None:
            return [B] * T
        srt = self.lengths[order]
        return [int(np.sum(srt > t)) for t in range(T)]

    def _steps(self, T, backward, reverse):
        forward_order = range(T - 1, -1, -1) if reverse else range(T)
        return reversed(forward_order) if backward else forward_order

    # -- forward ---------------------------------------------------------
    def forward(self, x, h0=None, c0=None, reverse=False, keep=False):
        """y (T, B, Hout), h_n (B, Hout), c_n (B, H) or None, and the Tape
        (None unless keep)."""
        T, B, _ = x.shape
        order = self._order(B)
        running = self._running(T, B, order)
        Hout = self.w_hh.shape[1]
        xs = self._sorted(x, order, 1)
        h, c = self._state_copies(h0, c0, order, B, x.dtype)
        y = np.zeros((T, B, Hout), x.dtype)
        steps = [None] * T
        gx = self.products(xs.reshape(T * B, -1), self.w_ih).reshape(T, B, -1) + self.bias_x
        for t in self._steps(T, False, reverse):
            n = running[t]
            hp, cp = h[:n], None if c is None else c[:n]
            if keep:  # the tape keeps them: copies
                hp, cp = hp.copy(), None if cp is None else cp.copy()
            h_new, c_new, steps[t] = self._cell_forward(gx[t, :n], hp, cp)
            h[:n] = y[t, :n] = h_new
            if c is not None:
                c[:n] = c_new
        tape = Tape(xs, steps, reverse) if keep else None
        c = None if c is None else self._unsorted(c, order, 0)
        return self._unsorted(y, order, 1), self._unsorted(h, order, 0), c, tape

    def _cell_forward(self, gx, hp, cp):
        """One step on the running rows, from their input projection gx
        (with the biases): (h, c or None, what BPTT keeps)."""
        H, gh = self.H, self.products(hp, self.w_hh)
        if self.cell == "LSTM":
            a = gx + gh
            i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
            g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
            c = f * cp + i * g
            tc = np.tanh(c)
            m = o * tc
            h = m if self.w_hr is None else self.products(m, self.w_hr)
            return h, c, (hp, cp, i, f, g, o, tc, m)
        if self.cell == "GRU":
            r = sigmoid(gx[:, :H] + gh[:, :H])
            z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
            hn = gh[:, 2 * H:] + self.b_hn
            n = np.tanh(gx[:, 2 * H:] + r * hn)
            return (1 - z) * n + z * hp, None, (hp, r, z, n, hn)
        a = gx + gh
        h = np.tanh(a) if self.cell == "RNN_TANH" else np.maximum(a, 0)  # NaN stays
        return h, None, (hp, h)

    # -- BPTT ------------------------------------------------------------
    def backward(self, tape, dy, dh_n=None, dc_n=None):
        """dx (T, B, I), dh0 (B, Hout), dc0 (B, H) or None, and the
        parameters' gradients by name, for a loss whose gradient is dy for
        the outputs and dh_n, dc_n for the final states (None: zero)."""
        T, B, _ = tape.x.shape
        order = self._order(B)
        running = self._running(T, B, order)
        dys = self._sorted(dy, order, 1)
        dh, dc = self._state_copies(dh_n, dc_n, order, B, dy.dtype)
        GH = self.w_ih.shape[0]
        da_x, da_h = np.zeros((T, B, GH), dy.dtype), np.zeros((T, B, GH), dy.dtype)
        h_prev = np.zeros((T, B, dh.shape[1]), dy.dtype)
        grads = {}
        for t in self._steps(T, True, tape.reverse):
            n = running[t]
            dht = dys[t, :n] + dh[:n]
            da_x[t, :n], da_h[t, :n], dh[:n], dc_prev = self._cell_backward(
                tape.steps[t], dht, None if dc is None else dc[:n], grads)
            h_prev[t, :n] = tape.steps[t][0]
            if dc is not None:
                dc[:n] = dc_prev
        s, flat = self.suffix, (lambda a: a.reshape(T * B, -1))  # noqa: E731
        grads["weight_ih" + s] = flat(da_x).T @ flat(tape.x)
        grads["weight_hh" + s] = flat(da_h).T @ flat(h_prev)
        if self.has_bias:
            grads["bias_ih" + s] = flat(da_x).sum(axis=0)
            grads["bias_hh" + s] = flat(da_h).sum(axis=0)
        dx = self._unsorted(da_x @ self.w_ih, order, 1)
        dc = None if dc is None else self._unsorted(dc, order, 0)
        return dx, self._unsorted(dh, order, 0), dc, grads

    def _cell_backward(self, kept, dht, dct, grads):
        """One step back on the running rows: the gradients of the input
        and recurrent pre-activations, dL/dh_{t-1} and dL/dc_{t-1}."""
        if self.cell == "LSTM":
            hp, cp, i, f, g, o, tc, m = kept
            dm = dht
            if self.w_hr is not None:
                name = "weight_hr" + self.suffix
                grads[name] = grads.get(name, 0) + dht.T @ m
                dm = dht @ self.w_hr
            dc = dct + dm * o * (1 - tc * tc)
            da = np.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f),
                                 dc * i * (1 - g * g), dm * tc * o * (1 - o)], axis=1)
            return da, da, da @ self.w_hh, dc * f
        if self.cell == "GRU":
            hp, r, z, n, hn = kept
            dn = dht * (1 - z) * (1 - n * n)
            dz = dht * (hp - n) * z * (1 - z)
            dr = dn * hn * r * (1 - r)
            da_h = np.concatenate([dr, dz, dn * r], axis=1)
            return np.concatenate([dr, dz, dn], axis=1), da_h, dht * z + da_h @ self.w_hh, None
        hp, h = kept
        da = dht * ((1 - h * h) if self.cell == "RNN_TANH" else (h > 0))
        return da, da, da @ self.w_hh, None
