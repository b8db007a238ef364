"""Writes the reference fixtures under tests/data from PyTorch.

Run with torch 2.13.0 (CPU) installed:  python tools/make_fixtures.py
Each .npz holds one configuration: its options (as JSON), the inputs, the
weights, torch's outputs and the gradients of
    L = sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)]
with respect to the input, the initial states and every parameter. The tests
compare cyrnn against them without importing torch.

The single-step cells (torch.nn.LSTMCell, GRUCell, RNNCell against
cyrnn.cells) go to tests/data/cells/cell_<kind>_<case>_<dtype>.npz, apart
from the layers' files (tests/test_fixtures.py globs tests/data/*.npz as
layers): each holds one step, its inputs, weights and outputs, and the
gradients of
    L = sum(h1 * dh) [+ sum(c1 * dc)]
with respect to the input, the state and every parameter.

    python tools/make_fixtures.py                 # everything
    python tools/make_fixtures.py --only cells    # the cells' files only
"""
import argparse
import json
import pathlib

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data"
I, H, T, B = 3, 5, 6, 4

# name -> options; "lengths" is a list, "unbatched"/"no_hx" are flags of the
# call, everything else goes to the torch module's constructor.
COMMON = {
    "base": {},
    "layers2": {"num_layers": 2},
    "layers3": {"num_layers": 3},
    "bidirectional": {"bidirectional": True},
    "bidirectional_layers2": {"bidirectional": True, "num_layers": 2},
    "no_bias": {"bias": False},
    "batch_first": {"batch_first": True},
    "unbatched": {"unbatched": True},
    "unbatched_bidirectional": {"unbatched": True, "bidirectional": True, "num_layers": 2},
    "lengths": {"lengths": [4, 6, 1, 3]},
    "lengths_bidirectional_layers2": {"lengths": [2, 6, 5, 2], "bidirectional": True,
                                      "num_layers": 2},
    "lengths_batch_first": {"lengths": [3, 1, 6, 6], "batch_first": True},
    "lengths_no_bias_bidirectional": {"lengths": [5, 2, 6, 3], "bias": False,
                                      "bidirectional": True},
    "lengths_full": {"lengths": [6, 6, 6, 6]},
    "no_hx": {"no_hx": True, "num_layers": 2},
    "one_step": {"T": 1, "bidirectional": True},
    "batch_of_one_lengths": {"B": 1, "lengths": [4], "bidirectional": True},
    "batch_first_bidirectional_layers3": {"batch_first": True, "bidirectional": True,
                                          "num_layers": 3},
}
LSTM_ONLY = {
    "proj": {"proj_size": 2},
    "proj_bidirectional_layers2": {"proj_size": 3, "bidirectional": True, "num_layers": 2},
    "proj_lengths_batch_first": {"proj_size": 2, "lengths": [6, 2, 4, 5], "batch_first": True},
    "proj_unbatched_bidirectional": {"proj_size": 2, "unbatched": True, "bidirectional": True},
}
CELLS = {
    "lstm": (torch.nn.LSTM, {}, {**COMMON, **LSTM_ONLY}),
    "gru": (torch.nn.GRU, {}, COMMON),
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}, COMMON),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}, COMMON),
}


def saturated_module(cls, cell_options, options, dtype):
    """(the torch module, its dtype), with weights larger than torch's
    default so that the gates saturate somewhere, as trained ones do."""
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    module = cls(I, H, **cell_options, **options).to(torch_dtype)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.8, 0.8)
    return module, torch_dtype


def seeded_case(seed, options):
    """Seeds torch and numpy for one case: (rng, its options without the two
    flags every case may have, unbatched, no_hx)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    options = dict(options)
    return rng, options, options.pop("unbatched", False), options.pop("no_hx", False)


def backward_from_random(rng, torch_dtype, outputs):
    """Backpropagates L = sum of each output times a random cotangent, drawn
    from rng in the outputs' order (None: an output the cell has not, which
    draws nothing); returns the cotangents (None for those)."""
    cotangents = [None if out is None else
                  torch.tensor(rng.standard_normal(out.shape), dtype=torch_dtype)
                  for out in outputs]
    sum((out * cot).sum() for out, cot in zip(outputs, cotangents) if out is not None).backward()
    return cotangents


def make_case(cls, cell_options, options, dtype, seed):
    rng, options, unbatched, no_hx = seeded_case(seed, options)
    lengths = options.pop("lengths", None)
    steps, batch = options.pop("T", T), options.pop("B", B)
    module, torch_dtype = saturated_module(cls, cell_options, options, dtype)
    D = 2 if options.get("bidirectional") else 1
    K = D * options.get("num_layers", 1)
    h_out = options.get("proj_size", 0) or H
    is_lstm = cls is torch.nn.LSTM
    batch_first = options.get("batch_first", False)

    x_shape = (steps, I) if unbatched else ((batch, steps, I) if batch_first else (steps, batch, I))
    x = torch.tensor(rng.standard_normal(x_shape), dtype=torch_dtype, requires_grad=True)
    state = (lambda w: (K, w) if unbatched else (K, batch, w))
    h0 = torch.tensor(rng.standard_normal(state(h_out)) * 0.5, dtype=torch_dtype, requires_grad=True)
    c0 = torch.tensor(rng.standard_normal(state(H)) * 0.5, dtype=torch_dtype, requires_grad=True)
    hx = None if no_hx else ((h0, c0) if is_lstm else h0)

    if lengths is None:
        y, hn = module(x, hx)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        y, hn = module(packed, hx)
        y, _ = pad_packed_sequence(y, batch_first=batch_first, total_length=steps)
    h_n, c_n = hn if is_lstm else (hn, None)

    dy, dh_n, dc_n = backward_from_random(rng, torch_dtype, (y, h_n, c_n))
    record = dict(dc_n=dc_n, c_n=c_n) if is_lstm else {}

    config = {"cell": cls.__name__, **cell_options, **options, "input_size": I,
              "hidden_size": H, "unbatched": unbatched, "no_hx": no_hx, "dtype": dtype}
    record.update(y=y, h_n=h_n, dy=dy, dh_n=dh_n)
    arrays = fixture_arrays(record, config, module, x, None if no_hx else h0,
                            c0 if is_lstm and not no_hx else None)
    if lengths is not None:
        arrays["lengths"] = np.array(lengths, dtype=np.int64)
    return arrays


def fixture_arrays(record, config, module, x, h0, c0):
    """record's arrays, with the input's and the initial states' (None:
    not given) values and gradients, every parameter and its gradient, and
    config as JSON."""
    record.update(x=x, **{"grad.input": x.grad})
    for name, state in (("h0", h0), ("c0", c0)):
        if state is not None:
            record.update({name: state, "grad." + name: state.grad})
    for name, p in module.named_parameters():
        record["param." + name] = p
        record["grad." + name] = p.grad
    arrays = {k: v.detach().numpy() for k, v in record.items()}
    arrays["config"] = np.array(json.dumps(config))
    return arrays


# The single-step cells: name -> options; "unbatched"/"no_hx" are flags of
# the call, "B" the batch, everything else goes to the constructor.
CELL_OUT = OUT / "cells"
STEP_CASES = {
    "base": {},
    "no_bias": {"bias": False},
    "no_hx": {"no_hx": True},
    "batch_of_one": {"B": 1},
    "unbatched": {"unbatched": True},
    "unbatched_no_hx": {"unbatched": True, "no_hx": True},
    "unbatched_no_bias": {"unbatched": True, "bias": False},
}
STEP_CELLS = {
    "lstm": (torch.nn.LSTMCell, {}),
    "gru": (torch.nn.GRUCell, {}),
    "rnn_tanh": (torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNNCell, {"nonlinearity": "relu"}),
}


def make_cell_case(cls, cell_options, options, dtype, seed):
    """One step of a torch cell, and the gradients of
    L = sum(h1 * dh) [+ sum(c1 * dc)]."""
    rng, options, unbatched, no_hx = seeded_case(seed, options)
    batch = options.pop("B", B)
    module, torch_dtype = saturated_module(cls, cell_options, options, dtype)
    is_lstm = cls is torch.nn.LSTMCell
    rows = (lambda w: (w,) if unbatched else (batch, w))  # noqa: E731
    x = torch.tensor(rng.standard_normal(rows(I)), dtype=torch_dtype, requires_grad=True)
    h0 = torch.tensor(rng.standard_normal(rows(H)) * 0.5, dtype=torch_dtype, requires_grad=True)
    c0 = torch.tensor(rng.standard_normal(rows(H)) * 0.5, dtype=torch_dtype, requires_grad=True)
    hx = None if no_hx else ((h0, c0) if is_lstm else h0)

    out = module(x, hx)
    h1, c1 = out if is_lstm else (out, None)
    dh, dc = backward_from_random(rng, torch_dtype, (h1, c1))
    record = dict(c1=c1, dc=dc) if is_lstm else {}

    config = {"cell": cls.__name__, **cell_options, "bias": options.get("bias", True),
              "input_size": I, "hidden_size": H, "batch": None if unbatched else batch,
              "unbatched": unbatched, "no_hx": no_hx, "dtype": dtype}
    record.update(h1=h1, dh=dh)
    return fixture_arrays(record, config, module, x, None if no_hx else h0,
                          c0 if is_lstm and not no_hx else None)


def write_layers():
    OUT.mkdir(parents=True, exist_ok=True)
    count = 0
    for cell, (cls, cell_options, cases) in CELLS.items():
        for seed, (case, options) in enumerate(sorted(cases.items())):
            for dtype in ("float32", "float64"):
                arrays = make_case(cls, cell_options, options, dtype, seed)
                np.savez_compressed(OUT / f"{cell}_{case}_{dtype}.npz", **arrays)
                count += 1
    print(f"wrote {count} fixtures to {OUT} with torch {torch.__version__}")


def write_cells():
    CELL_OUT.mkdir(parents=True, exist_ok=True)
    count = 0
    for kind, (cls, cell_options) in STEP_CELLS.items():
        for seed, (case, options) in enumerate(sorted(STEP_CASES.items())):
            for dtype in ("float32", "float64"):
                arrays = make_cell_case(cls, cell_options, options, dtype, 100 + seed)
                np.savez_compressed(CELL_OUT / f"cell_{kind}_{case}_{dtype}.npz", **arrays)
                count += 1
    print(f"wrote {count} cell fixtures to {CELL_OUT} with torch {torch.__version__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("layers", "cells"),
                        help="write only the layers' or only the cells' fixtures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.only != "cells":
        write_layers()
    if args.only != "layers":
        write_cells()


if __name__ == "__main__":
    main()
