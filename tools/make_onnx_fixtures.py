"""Writes the ONNX-variant fixtures under tests/data/onnx from onnxruntime.

Run with onnx and onnxruntime installed:  python tools/make_onnx_fixtures.py
(written with onnx 1.23.2 and onnxruntime 1.32.0, CPU provider).

Two cells torch lacks, defined by ONNX's operators:
  lstm_peephole     ONNX LSTM with its peephole input P
  gru_reset_before  ONNX GRU with linear_before_reset=0 (r scales h before
                    the recurrent product; Keras' reset_after=False)
Each .npz holds one configuration in tools/make_fixtures.py's format, so
that the tests read both alike: "config" (JSON), the input "x", "h0"/"c0"
unless no_hx, "lengths" (int64) when ragged, every parameter as
"param.<torch name>" in torch's gate order and layout (weight_peephole_l0 is
(3, H), rows i, f, o), and onnxruntime's outputs in torch's layout: "y"
(T, B, D*H), or (B, T, D*H) when batch_first, "h_n" (D*L, B, H) and, for the
LSTM, "c_n". No gradients: onnxruntime computes none.

Each model is the whole torch-like module in one graph: one ONNX node per
layer, chained by Transpose/Reshape from ONNX's Y (T, D, B, H) to the next
layer's X (T, B, D*H), and the same plumbing at the end for torch's layouts.
batch_first is a Transpose of X and of Y in the graph, not the operators'
layout=1, which onnxruntime's CPU kernels refuse ("Batchwise recurrent
operations (layout == 1) are not supported").

float32 only: onnxruntime's CPU provider registers its LSTM and GRU kernels
for double, but they refuse to run ("LSTM operator does not support double
yet", the same for GRU; onnxruntime 1.32.0). The script checks that again
and says so if a newer onnxruntime has lifted it.
"""
import json
import pathlib

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import onnxruntime

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx"
I, H, T, B = 3, 5, 6, 4
OPSET = 22
DTYPES = ("float32",)  # see the docstring: no float64 kernels to run

# name -> options; "lengths" (a list) and "no_hx" are of the call, the rest
# of the module. tests/test_onnx_reference.py lists the same names.
CASES = {
    "base": {},
    "no_bias": {"bias": False},
    "bidirectional": {"bidirectional": True},
    "lengths": {"lengths": [4, 6, 1, 3]},
    "no_hx": {"no_hx": True, "num_layers": 2},
    "batch_first": {"batch_first": True},
    "layers2": {"num_layers": 2},
    "lengths_bidirectional": {"lengths": [2, 6, 5, 2], "bidirectional": True},
    "lengths_batch_first_bidirectional_layers2": {"lengths": [3, 1, 6, 6], "batch_first": True,
                                                  "bidirectional": True, "num_layers": 2},
}

# cell -> (ONNX operator, its attributes, torch's gate blocks in ONNX's order,
#          the config entry naming the variant)
CELLS = {
    # torch i, f, g, o -> ONNX i, o, f, c
    "lstm_peephole": ("LSTM", {}, [0, 3, 1, 2], {"peephole": True}),
    # torch r, z, n -> ONNX z, r, h; linear_before_reset=0 is the default, said anyway
    "gru_reset_before": ("GRU", {"linear_before_reset": 0}, [1, 0, 2], {"reset_after": False}),
}
PEEPHOLE_ORDER = [0, 2, 1]  # torch-style rows i, f, o -> ONNX's P blocks i, o, f
ELEM = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}


# -- parameters: torch's names and layout, then ONNX's ------------------------
def torch_params(op, options, rng, dtype):
    """Every parameter by torch name, uniform in [-0.8, 0.8]: larger than
    torch's default so that the gates saturate somewhere, as trained ones do."""
    gates = 4 if op == "LSTM" else 3
    D = 2 if options.get("bidirectional") else 1
    params = {}
    for layer in range(options.get("num_layers", 1)):
        width = I if layer == 0 else D * H
        for sfx in [f"_l{layer}", f"_l{layer}_reverse"][:D]:
            shapes = {"weight_ih": (gates * H, width), "weight_hh": (gates * H, H)}
            if options.get("bias", True):
                shapes.update(bias_ih=(gates * H,), bias_hh=(gates * H,))
            if op == "LSTM":
                shapes["weight_peephole"] = (3, H)
            for name, shape in shapes.items():
                params[name + sfx] = rng.uniform(-0.8, 0.8, shape).astype(dtype)
    return params


def reorder_gates(w, order):
    """w's gate blocks (along axis 0) from torch's order to ONNX's."""
    blocks = np.split(w, len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def onnx_weights(params, layer, D, order, op):
    """W (D, G*H, in), R (D, G*H, H), B (D, 2*G*H) or None and P (D, 3H) or
    None of one layer: directions stacked forward first, as ONNX wants."""
    sfxs = [f"_l{layer}", f"_l{layer}_reverse"][:D]
    W = np.stack([reorder_gates(params["weight_ih" + s], order) for s in sfxs])
    R = np.stack([reorder_gates(params["weight_hh" + s], order) for s in sfxs])
    Bias = P = None
    if "bias_ih" + sfxs[0] in params:  # ONNX's B is [Wb, Rb]: torch's b_ih then b_hh
        Bias = np.stack([np.concatenate([reorder_gates(params["bias_ih" + s], order),
                                         reorder_gates(params["bias_hh" + s], order)])
                         for s in sfxs])
    if op == "LSTM":
        P = np.stack([params["weight_peephole" + s][PEEPHOLE_ORDER].reshape(-1) for s in sfxs])
    return W, R, Bias, P


# -- the graph -----------------------------------------------------------------
class GraphBuilder:
    """The nodes, initializers and inputs of one graph; each method returns
    the name(s) of what it made, to wire into the next."""

    def __init__(self, elem):
        self.elem, self.nodes, self.inits, self.inputs = elem, [], [], []

    def const(self, name, value):
        self.inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def input(self, name, shape, elem=None):
        self.inputs.append(onnx.helper.make_tensor_value_info(name, elem or self.elem, shape))
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(onnx.helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def to_torch_output(self, y, name, batch_first):
        """ONNX's Y (T, D, B, H) as torch's y: (T, B, D*H), or (B, T, D*H)."""
        perm = [2, 0, 1, 3] if batch_first else [0, 2, 1, 3]
        moved = self.node("Transpose", [y], [name + "_moved"], perm=perm)
        # 0 keeps a dimension: the two leading ones, whatever T and B are
        shape = self.const(name + "_shape", np.array([0, 0, -1], np.int64))
        return self.node("Reshape", [moved, shape], [name])


def build_model(cell, options, params, dtype):
    """The whole module as one ONNX model: graph inputs X, sequence_lens,
    initial_h_l<k>, initial_c_l<k> (as the call has them), outputs y, h_n
    and c_n in torch's layout."""
    op, attrs, order, _ = CELLS[cell]
    L, D = options.get("num_layers", 1), 2 if options.get("bidirectional") else 1
    batch_first, lengths = options.get("batch_first", False), options.get("lengths")
    no_hx = options.get("no_hx", False)
    g = GraphBuilder(ELEM[dtype])
    x = g.input("X", [B, T, I] if batch_first else [T, B, I])
    if batch_first:  # ONNX's CPU kernels take time-major X only
        x = g.node("Transpose", [x], ["X_time_major"], perm=[1, 0, 2])
    seq = "" if lengths is None else g.input("sequence_lens", [B], onnx.TensorProto.INT32)
    h_parts, c_parts = [], []
    for layer in range(L):
        W, R, Bias, P = onnx_weights(params, layer, D, order, op)
        node_inputs = [x, g.const(f"W_l{layer}", W), g.const(f"R_l{layer}", R),
                       "" if Bias is None else g.const(f"B_l{layer}", Bias), seq]
        # each layer's own slice of torch's h0 (L*D, B, H): its own graph input
        node_inputs.append("" if no_hx else g.input(f"initial_h_l{layer}", [D, B, H]))
        outputs = [f"Y_l{layer}", f"Y_h_l{layer}"]
        if op == "LSTM":
            node_inputs.append("" if no_hx else g.input(f"initial_c_l{layer}", [D, B, H]))
            node_inputs.append(g.const(f"P_l{layer}", P))
            outputs.append(f"Y_c_l{layer}")
        direction = "bidirectional" if D == 2 else "forward"
        y, h, *c = g.node(op, node_inputs, outputs, hidden_size=H, direction=direction, **attrs)
        h_parts.append(h)
        c_parts.extend(c)
        if layer + 1 < L:  # the next layer's X: (T, B, D*H)
            x = g.to_torch_output(y, f"X_l{layer + 1}", batch_first=False)
    g.to_torch_output(y, "y", batch_first)
    # torch's h_n and c_n stack the layers' (D, B, H) states
    g.node("Concat", h_parts, ["h_n"], axis=0)
    out_shapes = {"y": [B, T, D * H] if batch_first else [T, B, D * H], "h_n": [L * D, B, H]}
    if op == "LSTM":
        g.node("Concat", c_parts, ["c_n"], axis=0)
        out_shapes["c_n"] = [L * D, B, H]
    outputs = [onnx.helper.make_tensor_value_info(n, g.elem, s) for n, s in out_shapes.items()]
    graph = onnx.helper.make_graph(g.nodes, f"cyrnn_{cell}", g.inputs, outputs,
                                   initializer=g.inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


# -- running -------------------------------------------------------------------
def run(model, feed):
    """The model's outputs by name, on one thread of the CPU provider."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # failures raise anyway; not logged twice
    session = onnxruntime.InferenceSession(model.SerializeToString(), opts,
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def make_case(cell, options, dtype, seed):
    rng = np.random.default_rng(seed)
    op, _, _, variant = CELLS[cell]
    no_hx, lengths = options.get("no_hx", False), options.get("lengths")
    L, D = options.get("num_layers", 1), 2 if options.get("bidirectional") else 1
    batch_first = options.get("batch_first", False)
    params = torch_params(op, options, rng, dtype)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    h0 = (rng.standard_normal((L * D, B, H)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((L * D, B, H)) * 0.5).astype(dtype)

    feed = {"X": x}
    if lengths is not None:
        feed["sequence_lens"] = np.array(lengths, np.int32)
    if not no_hx:
        for layer in range(L):
            feed[f"initial_h_l{layer}"] = h0[layer * D:(layer + 1) * D]
            if op == "LSTM":
                feed[f"initial_c_l{layer}"] = c0[layer * D:(layer + 1) * D]
    outputs = run(build_model(cell, options, params, dtype), feed)

    config = {"cell": op, **variant, "input_size": I, "hidden_size": H, "num_layers": L,
              "bidirectional": D == 2, "bias": options.get("bias", True),
              "batch_first": batch_first, "unbatched": False, "no_hx": no_hx, "dtype": dtype}
    arrays = {"config": np.array(json.dumps(config)), "x": x, "y": outputs["y"],
              "h_n": outputs["h_n"]}
    if op == "LSTM":
        arrays["c_n"] = outputs["c_n"]
    if not no_hx:
        arrays["h0"] = h0
        if op == "LSTM":
            arrays["c0"] = c0
    if lengths is not None:
        arrays["lengths"] = np.array(lengths, np.int64)
    arrays.update({"param." + name: value for name, value in params.items()})
    return arrays


def report_float64_support():
    """Whether this onnxruntime now runs the operators in float64 (1.32.0
    does not); only a note: the fixture set stays what DTYPES says."""
    for cell in CELLS:
        try:
            make_case(cell, {}, "float64", seed=0)
        except Exception as exc:  # onnxruntime raises its own Fail/RuntimeException
            print(f"{cell}: no float64 ({str(exc).split('Status Message: ')[-1].strip()})")
        else:
            print(f"{cell}: onnxruntime {onnxruntime.__version__} runs float64; "
                  "consider adding it to DTYPES (and to the tests)")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    count = 0
    for cell in CELLS:
        for seed, (case, options) in enumerate(sorted(CASES.items())):
            for dtype in DTYPES:
                arrays = make_case(cell, options, dtype, seed)
                np.savez_compressed(OUT / f"{cell}_{case}_{dtype}.npz", **arrays)
                count += 1
    print(f"wrote {count} fixtures to {OUT} with onnx {onnx.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    report_float64_support()


if __name__ == "__main__":
    main()
