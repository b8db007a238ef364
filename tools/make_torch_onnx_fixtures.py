"""Writes the torch -> ONNX fixtures under tests/data/onnx_torch, for
tests/test_onnx_torch.py (which needs neither torch nor onnxruntime).

Run with torch, onnx installed:  python tools/make_torch_onnx_fixtures.py
(written with torch 2.13.0+cpu and onnx 1.23.2; see the "versions" entry of
each .npz).

Each model is exported by torch.onnx.export with dynamo=False: the
TorchScript exporter, which works offline (the dynamo exporter needs
onnxscript), opset 17, with the time and batch axes dynamic. Beside each
<name>.onnx, <name>.npz holds

* "config": JSON: the model, its graph's input and output names, versions;
* "param.<torch name>": torch's state_dict (the weights cyrnn must read back
  exactly, in torch's layout and gate order);
* for each of two calls (different T and B, to exercise the dynamic axes)
  "in<k>.<input name>" and "out<k>.<output name>": torch's outputs.

The models:
  emb_lstm2_bi          Embedding(30, 8) + LSTM(8, 12, num_layers=2,
                        bidirectional=True) + Linear(24, 30); ids only, so
                        torch builds the zero initial states inside the graph
                        (Shape/Gather/Unsqueeze/Concat/ConstantOfShape/Slice)
  emb_lstm2_bi_states   the same model with h0 and c0 as graph inputs (Slice
                        of each layer's rows)
  gru2_batch_first      GRU(6, 10, num_layers=2, batch_first=True) + Linear(10, 4),
                        with h0: batch_first is a Transpose around the nodes,
                        each layer's Y a Squeeze
  rnn_relu_bi           RNN(5, 7, nonlinearity="relu", bidirectional=True)
"""
import json
import pathlib
import warnings

import numpy as np
import onnx
import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx_torch"
OPSET = 17
CALLS = ((5, 3), (2, 1))  # (T, B) of the two calls


class EmbLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 8)
        self.lstm = torch.nn.LSTM(8, 12, num_layers=2, bidirectional=True)
        self.lin = torch.nn.Linear(24, 30)

    def forward(self, ids, h0=None, c0=None):
        hx = None if h0 is None else (h0, c0)
        y, (h_n, c_n) = self.lstm(self.emb(ids), hx)
        return self.lin(y), h_n, c_n


class GRUHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(6, 10, num_layers=2, batch_first=True)
        self.lin = torch.nn.Linear(10, 4)

    def forward(self, x, h0):
        y, h_n = self.gru(x, h0)
        return self.lin(y), h_n


class BiRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(5, 7, nonlinearity="relu", bidirectional=True)

    def forward(self, x):
        return self.rnn(x)


def emb_inputs(rng, T, B, states):
    inputs = {"ids": torch.from_numpy(rng.integers(0, 30, (T, B)))}
    if states:
        inputs["h0"] = torch.from_numpy(rng.standard_normal((4, B, 12)).astype(np.float32))
        inputs["c0"] = torch.from_numpy(rng.standard_normal((4, B, 12)).astype(np.float32))
    return inputs


CASES = {
    "emb_lstm2_bi": dict(
        module=EmbLSTM, inputs=lambda rng, T, B: emb_inputs(rng, T, B, False),
        outputs=["out", "h_n", "c_n"],
        dynamic={"ids": {0: "T", 1: "B"}}),
    "emb_lstm2_bi_states": dict(
        module=EmbLSTM, inputs=lambda rng, T, B: emb_inputs(rng, T, B, True),
        outputs=["out", "h_n", "c_n"],
        dynamic={"ids": {0: "T", 1: "B"}, "h0": {1: "B"}, "c0": {1: "B"}}),
    "gru2_batch_first": dict(
        module=GRUHead,
        inputs=lambda rng, T, B: {
            "x": torch.from_numpy(rng.standard_normal((B, T, 6)).astype(np.float32)),
            "h0": torch.from_numpy(rng.standard_normal((2, B, 10)).astype(np.float32))},
        outputs=["out", "h_n"],
        dynamic={"x": {0: "B", 1: "T"}, "h0": {1: "B"}}),
    "rnn_relu_bi": dict(
        module=BiRNN,
        inputs=lambda rng, T, B: {
            "x": torch.from_numpy(rng.standard_normal((T, B, 5)).astype(np.float32))},
        outputs=["y", "h_n"],
        dynamic={"x": {0: "T", 1: "B"}}),
}


def strip_doc_strings(model):
    """torch may leave source locations in doc strings: none in the fixtures."""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""


def make(name, case, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = case["module"]().eval()
    calls = [case["inputs"](rng, T, B) for T, B in CALLS]
    path = OUT / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(calls[0].values()), str(path), dynamo=False,
                          opset_version=OPSET, input_names=list(calls[0]),
                          output_names=case["outputs"], dynamic_axes=case["dynamic"])
    model = onnx.load(str(path))
    strip_doc_strings(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    arrays = {f"param.{k}": v.detach().numpy() for k, v in module.state_dict().items()}
    with torch.no_grad():
        for k, inputs in enumerate(calls):
            outputs = module(*inputs.values())
            for n, value in inputs.items():
                arrays[f"in{k}.{n}"] = value.numpy()
            for n, value in zip(case["outputs"], outputs):
                arrays[f"out{k}.{n}"] = value.numpy()
    config = {"model": repr(module), "inputs": list(calls[0]), "outputs": case["outputs"],
              "calls": CALLS, "opset": OPSET,
              "versions": {"torch": torch.__version__, "onnx": onnx.__version__}}
    arrays["config"] = np.array(json.dumps(config))
    np.savez_compressed(OUT / f"{name}.npz", **arrays)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, case) in enumerate(CASES.items()):
        make(name, case, seed)
    print(f"wrote {len(CASES)} models to {OUT} with torch {torch.__version__}, "
          f"onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
