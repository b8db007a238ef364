"""The numpy reference of every cell: one layer and direction, forward and BPTT.

Plain per-step numpy written from torch's equations (gates i, f, g, o for the
LSTM; r, z, n for the GRU, with r applied to W_hn h + b_hn), to be read
against them. Beside torch's cells, two variants from ONNX's equations,
written in torch's gate order and layout: LSTM_PEEPHOLE, ONNX's LSTM with
its peepholes P (a `weight_peephole` of shape (3, H), rows i, f, o: i and f
look at c_{t-1}, o at c_t), and GRU_RESET_BEFORE, ONNX's default GRU
(linear_before_reset=0, Keras' reset_after=False), whose r scales h before
the product: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
The batch is handled as torch's PackedSequence does: sorted by length,
longest first, step t computing the rows still running (a prefix).
The tests use it with `exact_products` (IEEE semantics: NaN * 0 is NaN,
whatever BLAS does); benchmarks/compare.py times it, with BLAS products, as
the plain-numpy peer.
"""
from dataclasses import dataclass

import numpy as np

from cyrnn import _cells

# The registry's facts (its shapes, not its arithmetic, which is written out
# below): gate blocks per cell, and the cells whose state is (h, c).
GATES = {cell.key: cell.gates for cell in _cells.CELLS}
WITH_CELL_STATE = tuple(cell.key for cell in _cells.CELLS if cell.has_cell_state)


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
    "RNN_RELU", "LSTM_PEEPHOLE", "GRU_RESET_BEFORE") with the weights in
    `params` (torch's names with `suffix`; biases optional, weight_hr for an
    LSTM's projection, weight_peephole required by LSTM_PEEPHOLE), on a
    batch whose sequences have `lengths` (None: all T steps)."""

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
        # None but for LSTM_PEEPHOLE, whose peepholes are not optional
        self.w_peephole = params["weight_peephole" + suffix] if cell == "LSTM_PEEPHOLE" else None
        self.has_bias = "bias_ih" + suffix in params
        self.has_cell_state = cell in WITH_CELL_STATE
        # b_hh joins the input projection, but for the GRU's b_hn, which r
        # scales (GRU_RESET_BEFORE's r scales h instead, so its b_hn joins too)
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
        c is None but for the cells with a cell state."""
        def copy(a, width):
            return np.zeros((B, width), dtype) if a is None else \
                self._sorted(a, order, 0).astype(dtype)  # astype copies
        return copy(h, self.w_hh.shape[1]), copy(c, self.H) if self.has_cell_state else None

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
        if self.has_cell_state:
            return self._lstm_forward(gx, hp, cp)
        if self.cell == "GRU":
            return self._gru_forward(gx, hp)
        if self.cell == "GRU_RESET_BEFORE":
            return self._gru_reset_before_forward(gx, hp)
        a = gx + self.products(hp, self.w_hh)
        h = np.tanh(a) if self.cell == "RNN_TANH" else np.maximum(a, 0)  # NaN stays
        return h, None, (hp, h)

    def _lstm_forward(self, gx, hp, cp):
        """The LSTM's step, with or without peepholes. BPTT keeps (hp, cp,
        i, f, g, o, tanh(c), o * tanh(c)), and c_t after them if peepholes
        (o's peephole looks at it)."""
        H, p = self.H, self.w_peephole
        a = gx + self.products(hp, self.w_hh)
        ai, af, ao = a[:, :H], a[:, H:2 * H], a[:, 3 * H:]
        if p is not None:  # i and f look at the previous cell state
            ai, af = ai + p[0] * cp, af + p[1] * cp
        i, f = sigmoid(ai), sigmoid(af)
        g = np.tanh(a[:, 2 * H:3 * H])
        c = f * cp + i * g
        if p is not None:  # o looks at the new one: it is computed after c
            ao = ao + p[2] * c
        o = sigmoid(ao)
        tc = np.tanh(c)
        m = o * tc
        h = m if self.w_hr is None else self.products(m, self.w_hr)
        kept = (hp, cp, i, f, g, o, tc, m)
        return h, c, kept if p is None else kept + (c,)

    def _gru_forward(self, gx, hp):
        """torch's GRU step: r scales W_hn h + b_hn. BPTT keeps (hp, r, z,
        n, W_hn h + b_hn)."""
        H, gh = self.H, self.products(hp, self.w_hh)
        r = sigmoid(gx[:, :H] + gh[:, :H])
        z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:] + self.b_hn
        n = np.tanh(gx[:, 2 * H:] + r * hn)
        return (1 - z) * n + z * hp, None, (hp, r, z, n, hn)

    def _gru_reset_before_forward(self, gx, hp):
        """ONNX's default GRU step: r scales h before W_hn multiplies it, so
        the recurrent product splits in two: the r and z rows of w_hh by h,
        its n rows by r * h. BPTT keeps (hp, r, z, n, r * hp)."""
        H = self.H
        gh = self.products(hp, self.w_hh[:2 * H])
        r = sigmoid(gx[:, :H] + gh[:, :H])
        z = sigmoid(gx[:, H:2 * H] + gh[:, H:])
        rh = r * hp
        n = np.tanh(gx[:, 2 * H:] + self.products(rh, self.w_hh[2 * H:]))
        return (1 - z) * n + z * hp, None, (hp, r, z, n, rh)

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
        # what w_hh multiplied: h_{t-1}, and r * h_{t-1} for GRU_RESET_BEFORE's n rows
        h_prev = np.zeros((T, B, dh.shape[1]), dy.dtype)
        rh_prev = np.zeros_like(h_prev) if self.cell == "GRU_RESET_BEFORE" else None
        grads = {}
        for t in self._steps(T, True, tape.reverse):
            n = running[t]
            dht = dys[t, :n] + dh[:n]
            da_x[t, :n], da_h[t, :n], dh[:n], dc_prev = self._cell_backward(
                tape.steps[t], dht, None if dc is None else dc[:n], grads)
            h_prev[t, :n] = tape.steps[t][0]
            if rh_prev is not None:
                rh_prev[t, :n] = tape.steps[t][4]
            if dc is not None:
                dc[:n] = dc_prev
        s, flat = self.suffix, (lambda a: a.reshape(T * B, -1))  # noqa: E731
        grads["weight_ih" + s] = flat(da_x).T @ flat(tape.x)
        grads["weight_hh" + s] = self._weight_hh_grad(
            flat(da_h), flat(h_prev), None if rh_prev is None else flat(rh_prev))
        if self.has_bias:
            grads["bias_ih" + s] = flat(da_x).sum(axis=0)
            grads["bias_hh" + s] = flat(da_h).sum(axis=0)
        dx = self._unsorted(da_x @ self.w_ih, order, 1)
        dc = None if dc is None else self._unsorted(dc, order, 0)
        return dx, self._unsorted(dh, order, 0), dc, grads

    def _weight_hh_grad(self, da_h, h_prev, rh_prev):
        """dL/dw_hh from the recurrent pre-activations' gradients (rows:
        steps and batch) and what w_hh multiplied: h_prev, but rh_prev
        (r * h_{t-1}) for the n rows when it is not None."""
        if rh_prev is None:
            return da_h.T @ h_prev
        H2 = 2 * self.H
        return np.concatenate([da_h[:, :H2].T @ h_prev, da_h[:, H2:].T @ rh_prev])

    def _cell_backward(self, kept, dht, dct, grads):
        """One step back on the running rows: the gradients of the input
        and recurrent pre-activations, dL/dh_{t-1} and dL/dc_{t-1}."""
        if self.has_cell_state:
            return self._lstm_backward(kept, dht, dct, grads)
        if self.cell == "GRU":
            return self._gru_backward(kept, dht)
        if self.cell == "GRU_RESET_BEFORE":
            return self._gru_reset_before_backward(kept, dht)
        hp, h = kept
        da = dht * ((1 - h * h) if self.cell == "RNN_TANH" else (h > 0))
        return da, da, da @ self.w_hh, None

    def _lstm_backward(self, kept, dht, dct, grads):
        """The LSTM's step back; the peepholes add paths from c_{t-1} to i
        and f and from c_t to o, and their own gradient to `grads`."""
        hp, cp, i, f, g, o, tc, m = kept[:8]
        p = self.w_peephole
        dm = dht
        if self.w_hr is not None:
            name = "weight_hr" + self.suffix
            grads[name] = grads.get(name, 0) + dht.T @ m
            dm = dht @ self.w_hr
        do = dm * tc * o * (1 - o)
        dc = dct + dm * o * (1 - tc * tc)
        if p is not None:  # c_t also reached h through o's peephole
            dc = dc + do * p[2]
        di, df = dc * g * i * (1 - i), dc * cp * f * (1 - f)
        da = np.concatenate([di, df, dc * i * (1 - g * g), do], axis=1)
        dcp = dc * f
        if p is not None:  # and c_{t-1} reached c_t through i's and f's
            dcp = dcp + di * p[0] + df * p[1]
            name, c = "weight_peephole" + self.suffix, kept[8]
            step = np.stack([(di * cp).sum(axis=0), (df * cp).sum(axis=0), (do * c).sum(axis=0)])
            grads[name] = grads.get(name, 0) + step
        return da, da, da @ self.w_hh, dcp

    def _gru_backward(self, kept, dht):
        """torch's GRU step back: n's recurrent pre-activation is r-scaled."""
        hp, r, z, n, hn = kept
        dn = dht * (1 - z) * (1 - n * n)
        dz = dht * (hp - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        da_h = np.concatenate([dr, dz, dn * r], axis=1)
        return np.concatenate([dr, dz, dn], axis=1), da_h, dht * z + da_h @ self.w_hh, None

    def _gru_reset_before_backward(self, kept, dht):
        """ONNX's default GRU step back: r and h_{t-1} meet in r * h_{t-1}
        before W_hn, so dL/d(r * h) splits between them; h_{t-1} also gets
        the paths through z's interpolation and through the r and z rows."""
        hp, r, z, n, rh = kept
        H = self.H
        dn = dht * (1 - z) * (1 - n * n)
        dz = dht * (hp - n) * z * (1 - z)
        drh = dn @ self.w_hh[2 * H:]
        dr = drh * hp * r * (1 - r)
        da = np.concatenate([dr, dz, dn], axis=1)  # the biases sit outside r: one gradient
        dhp = dht * z + drh * r + da[:, :2 * H] @ self.w_hh[:2 * H]
        return da, da, dhp, None
