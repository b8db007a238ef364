"""Whole models beyond one layer: a word-level language model's training
step (Embedding -> 2-layer LSTM with dropout -> Dropout -> Linear decoder,
optionally tied, softmax cross-entropy, clipping and SGD), as
examples/word_language_model.py runs it with its default sizes."""
import numpy as np

import cyrnn
from cyrnn import losses, optim

from .common import pin_threads

VOCAB, EMBED, HIDDEN, BPTT, BATCH = 5000, 128, 128, 35, 20


def language_model(tied):
    embedding = cyrnn.Embedding(VOCAB, EMBED, seed=0)
    decoder = cyrnn.Linear(HIDDEN, VOCAB, seed=3)
    if tied:
        decoder.tie("weight", embedding)
    return cyrnn.Sequential(embedding, cyrnn.Dropout(0.2, seed=4),
                            cyrnn.LSTM(EMBED, HIDDEN, 2, dropout=0.2, seed=1),
                            cyrnn.Dropout(0.2, seed=2), decoder)


class LanguageModelStep:
    """One truncated-BPTT training step of 35 x 20 tokens (700 words)."""

    params = [[False, True]]
    param_names = ["tied"]
    timeout = 120

    def setup(self, tied):
        pin_threads()
        self.model = language_model(tied)
        ids = np.random.default_rng(0).integers(0, VOCAB, (BPTT + 1, BATCH))
        self.x, self.y = ids[:-1], ids[1:]
        self.states = None

    def time_training_step(self, tied):
        out, self.states, tape = self.model.forward(self.x, self.states)
        _, dout = losses.softmax_cross_entropy(out, self.y)
        grads = self.model.backward(tape, dout).params
        optim.clip_grad_norm(grads, 0.25)
        params = self.model.parameters()
        for name, grad in grads.items():
            if isinstance(grad, cyrnn.RowGradient):
                params[name][grad.indices] -= 1e-3 * grad.values
            else:
                params[name] -= 1e-3 * grad
        self.states = cyrnn.detach_states(self.states)

    def time_inference(self, tied):
        self.model(self.x)
