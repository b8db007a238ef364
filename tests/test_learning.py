"""An LSTM learns a task that needs memory; a memoryless model cannot.

Each sequence starts with one of K = 4 "recall" symbols, followed by 29
distractor symbols drawn from 4 other symbols; the target, at the last
step, is the first symbol. A Sequential(LSTM, Linear) trained with Adam
must reach >= 95% held-out accuracy within 600 steps. A model that sees
only the last input (a Linear layer on it, trained the same way) has no
information about the target and stays at chance (25%)."""
import numpy as np

import cyrnn
from cyrnn import losses, optim

K, M, T = 4, 4, 30            # recall symbols, distractor symbols, sequence length
H, BATCH, MAX_STEPS = 32, 64, 600


def recall_batch(rng, size):
    symbols = rng.integers(K, K + M, (T, size))
    symbols[0] = rng.integers(0, K, size)
    return np.eye(K + M, dtype=np.float32)[symbols], symbols[0]


def train(model, head_input, steps, rng, x_test, y_test, stop_at=None):
    """Adam on fresh batches; head_input maps (x, out-of-model) to what
    the loss sees. Returns the held-out accuracy and the steps taken."""
    opt = optim.Adam(model.parameters(), lr=1e-2)
    accuracy = 0.0
    for step in range(1, steps + 1):
        x, y = recall_batch(rng, BATCH)
        x_in = head_input(x)
        out, _, tape = model.forward(x_in)
        loss, dlast = losses.softmax_cross_entropy(out[-1], y)
        dout = np.zeros_like(out)
        dout[-1] = dlast
        grads = model.backward(tape, dout).params
        optim.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        if step % 50 == 0 or step == steps:
            accuracy = float(np.mean(model(head_input(x_test))[0][-1].argmax(-1) == y_test))
            if stop_at is not None and accuracy >= stop_at:
                return accuracy, step
    return accuracy, steps


def test_lstm_recalls_the_first_symbol_and_a_memoryless_model_cannot():
    x_test, y_test = recall_batch(np.random.default_rng(123), 1000)

    lstm = cyrnn.LSTM(K + M, H, seed=1)
    lstm.parameters()["bias_ih_l0"][H:2 * H] = 3.0      # forget gates open at the start
    model = cyrnn.Sequential(lstm, cyrnn.Linear(H, K, seed=2))
    accuracy, steps = train(model, lambda x: x, MAX_STEPS, np.random.default_rng(0),
                            x_test, y_test, stop_at=0.99)
    assert accuracy >= 0.95, (accuracy, steps)

    # Memoryless: a Linear layer on the last input only, same optimiser and budget.
    memoryless = cyrnn.Sequential(cyrnn.Linear(K + M, K, seed=3))
    baseline, _ = train(memoryless, lambda x: x[-1:], MAX_STEPS, np.random.default_rng(0),
                        x_test, y_test)
    assert baseline <= 0.25 + 0.07, baseline
