"""Truncated backpropagation through time on a long series with cyrnn.

A long sine-with-noise series is cut into chunks of 50 steps. Each chunk
starts from the state the previous chunk ended with (the values are
carried), while the gradient stops at the chunk boundary: cyrnn has no
autograd graph, and backward() stops at the hx it was given.
cyrnn.detach_states(states) makes that explicit (it returns copies).

    python examples/truncated_bptt.py       # a few seconds
"""
import numpy as np

import cyrnn
from cyrnn import losses, optim

rng = np.random.default_rng(0)
t = np.arange(20_000)
series = np.sin(2 * np.pi * t / 37) + 0.5 * np.sin(2 * np.pi * t / 11) + 0.1 * rng.standard_normal(len(t))
x_all = series[:-1].reshape(-1, 1, 1)              # (T, B=1, 1): one long sequence
y_all = series[1:].reshape(-1, 1, 1)               # predict the next value

model = cyrnn.Sequential(cyrnn.GRU(1, 32, dtype=np.float64, seed=0),
                         cyrnn.Linear(32, 1, dtype=np.float64, seed=1))
opt = optim.Adam(model.parameters(), lr=3e-3)
chunk = 50
for epoch in range(3):
    states, total = None, 0.0                      # a fresh state at the start of the series
    for start in range(0, len(x_all) - chunk + 1, chunk):
        x, y = x_all[start:start + chunk], y_all[start:start + chunk]
        out, states, tape = model.forward(x, states)          # starts where the last chunk ended
        loss, dout = losses.mse(out, y)
        grads = model.backward(tape, dout).params             # BPTT within this chunk only
        optim.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        states = cyrnn.detach_states(states)                  # carry the values on
        total += float(loss)
    print(f"epoch {epoch}: mean chunk MSE {total / (len(x_all) // chunk):.4f} "
          f"(noise floor 0.0100)")

# The chunked inference equals one long pass: the state is really carried.
long_out, _ = model(x_all[:200])
states, pieces = None, []
for start in range(0, 200, chunk):
    out, states = model(x_all[start:start + chunk], states)
    pieces.append(out)
print("chunked == one pass:", np.allclose(np.concatenate(pieces), long_out))
