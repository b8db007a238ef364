"""A character-level LSTM language model on standard-library Python source,
written against cyrnn's public API (what `python -m cyrnn demo` does, minus
the options and the progress bar).

    python examples/char_lm.py            # about a minute; set OMP_NUM_THREADS=1 on a busy machine
"""
import importlib.util
import time

import numpy as np

import cyrnn
from cyrnn import losses, optim

# 1. Data: the source of a few standard-library modules, as character ids.
modules = ["textwrap", "string", "fnmatch", "shlex", "calendar", "difflib", "argparse", "random"]
text = "\n".join(importlib.util.find_spec(m).loader.get_source(m) for m in modules)
text = text.encode("ascii", "replace").decode("ascii")
chars = sorted(set(text))
V = len(chars)
ids = np.array([chars.index(c) for c in text])
B, T, H = 32, 100, 128
streams = ids[: len(ids) // B * B].reshape(B, -1).T       # (L, B): 32 parallel streams of text


def one_hot(i):
    return np.eye(V, dtype=np.float32)[i]


# 2. Model: LSTM + Linear head; forget-gate biases start at 1.
model = cyrnn.Sequential(cyrnn.LSTM(V, H, seed=0), cyrnn.Linear(H, V, seed=1))
model.parameters()["0.bias_ih_l0"][H:2 * H] = 1.0
opt = optim.Adam(model.parameters(), lr=1e-2)

# 3. Training: truncated BPTT, the state carried from one chunk to the next.
states, pos, start = None, 0, time.perf_counter()
for step in range(1, 1201):
    if pos + T + 1 > len(streams):
        pos, states = 0, None                              # end of the text: start over
    chunk = streams[pos:pos + T + 1]
    pos += T
    logits, states, tape = model.forward(one_hot(chunk[:-1]), states)
    loss, dlogits = losses.softmax_cross_entropy(logits, chunk[1:])
    grads = model.backward(tape, dlogits).params
    optim.clip_grad_norm(grads, 1.0)
    opt.step(grads)
    states = cyrnn.detach_states(states)                   # keep the values, cut the gradient
    if step % 100 == 0:
        rate = step * B * T / (time.perf_counter() - start)
        print(f"step {step:5d}  loss {float(loss):.3f} nats/char  {rate:,.0f} chars/s")

# 4. Save, reload, and sample 300 characters at temperature 0.7 from the reloaded model.
cyrnn.save("char_lm.npz", model)
model = cyrnn.load("char_lm.npz")
rng = np.random.default_rng(0)
text_ids = [chars.index(c) for c in "def "]
logits, states = model(one_hot(np.array(text_ids))[:, None, :])
for _ in range(300):
    p = np.exp((logits[-1, 0] - logits[-1, 0].max()) / 0.7)
    text_ids.append(int(rng.choice(V, p=p / p.sum())))
    logits, states = model(one_hot(np.array([[text_ids[-1]]])), states)
print("".join(chars[i] for i in text_ids))
