"""Writes reference fixtures of the feed-forward layers under
tests/data/layers from PyTorch.

Run with torch 2.13.0 (CPU) installed:  python tools/make_layer_fixtures.py
Each .npz holds one torch.nn.Embedding configuration: its options (as
JSON), the table, the ids, torch's output, and the gradient of
L = sum(y * dy) with respect to the table (dense, as torch gives it).
The tests compare cyrnn against them without importing torch.
"""
import json
import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "layers"
EMBEDDINGS = {
    "base": {"num_embeddings": 11, "embedding_dim": 4, "ids_shape": (5, 3)},
    "padding": {"num_embeddings": 11, "embedding_dim": 4, "padding_idx": 2,
                "ids_shape": (6, 2)},
    "padding_negative": {"num_embeddings": 9, "embedding_dim": 3, "padding_idx": -1,
                         "ids_shape": (4, 2, 3)},
    "one_id": {"num_embeddings": 5, "embedding_dim": 6, "ids_shape": ()},
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def embedding_case(options, dtype, seed):
    torch.manual_seed(seed)
    shape = options["ids_shape"]
    module = torch.nn.Embedding(options["num_embeddings"], options["embedding_dim"],
                                padding_idx=options.get("padding_idx"), dtype=DTYPES[dtype])
    # repeated ids, so that the gradient sums several lookups of a row
    ids = torch.randint(0, options["num_embeddings"] // 2 + 1, shape)
    y = module(ids)
    dy = torch.randn(y.shape, dtype=DTYPES[dtype])
    (y * dy).sum().backward()
    config = {"layer": "Embedding", "dtype": dtype, "seed": seed,
              **{k: v for k, v in options.items() if k != "ids_shape"}}
    return {"config": np.array(json.dumps(config)), "weight": module.weight.detach().numpy(),
            "ids": ids.numpy(), "y": y.detach().numpy(), "dy": dy.numpy(),
            "grad_weight": module.weight.grad.numpy()}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, options) in enumerate(EMBEDDINGS.items()):
        for dtype in DTYPES:
            path = OUT / f"embedding_{name}_{dtype}.npz"
            np.savez(path, **embedding_case(options, dtype, seed))
            print("wrote", path.relative_to(OUT.parent.parent.parent))


if __name__ == "__main__":
    main()
