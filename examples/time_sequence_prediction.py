"""Learning sine waves and predicting their future: cyrnn's version of the
"time_sequence_prediction" example of pytorch/examples, written from its
description.

100 sine waves of period 2*pi*20 with random phases, 500 points each
(the original has 1000: --length 1000), in float64; 97 train, 3 test. The model is two stacked LSTM cells of 51 units
and a Linear head that predicts the next value; it is trained full-batch
with L-BFGS (cyrnn.optim.LBFGS, scipy's L-BFGS-B) on the mean squared error
of the next-value prediction, then runs on its own: after the test waves'
known values it predicts 1000 more, each from its own previous output, and
prints how far that free run is from the true waves.

Training runs the two cells over whole sequences as one 2-layer cyrnn.LSTM
(the same computation); the free-running future is made one step at a time
by two cyrnn.LSTMCell taken from that layer (LSTMCell.from_layer).

With torch installed (``pip install torch==2.13.0``), torch's original
model (nn.LSTMCell x 2 + nn.Linear, a Python loop over time steps, trained
by torch.optim.LBFGS with lr=0.8) starts from the same weights in the same
run for one step of 20 iterations (--torch-steps), and its losses and
time per evaluation (one forward and backward pass over the batch) are
printed beside cyrnn's. Give --plot
PATH to draw the predictions (needs matplotlib).

    python examples/time_sequence_prediction.py            # about a minute
"""
import argparse
import time

import numpy as np

import cyrnn
from cyrnn import losses, optim

HIDDEN = 51


def sine_waves(n=100, length=1000, period=20, seed=2):
    rng = np.random.default_rng(seed)
    phase = rng.integers(-4 * period, 4 * period, size=(n, 1))
    return np.sin((np.arange(length) + phase) / period)  # (n, length)


def as_sequences(waves):
    """(inputs, targets), time-major (T, B, 1): each value predicts the next."""
    series = waves.T[:, :, None]
    return series[:-1], series[1:]


# -- cyrnn -------------------------------------------------------------------
def build_model():
    return cyrnn.Sequential(cyrnn.LSTM(1, HIDDEN, num_layers=2, dtype=np.float64, seed=0),
                            cyrnn.Linear(HIDDEN, 1, dtype=np.float64, seed=1))


def train_cyrnn(model, train, test, steps, max_iter):
    opt = optim.LBFGS(model.parameters(), max_iter=max_iter)
    (x, y), (x_test, y_test) = train, test
    calls = []

    def closure():
        calls.append(None)
        out, _, tape = model.forward(x)
        loss, dout = losses.mse(out, y)
        return loss, model.backward(tape, dout).params

    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = opt.step(closure)
        test_loss, _ = losses.mse(model(x_test)[0], y_test)
        print(f"  cyrnn step {step:2d}: loss {loss:.3e}  test loss {float(test_loss):.3e}")
    return loss, float(test_loss), time.perf_counter() - start, len(calls)


def predict_future(model, known, future):
    """The known values (T, B, 1) through the model, then `future` values
    each predicted from the previous prediction, one step at a time by the
    layer's two cells: (T + future, B) predictions."""
    lstm, head = model[0], model[1]
    cells = [cyrnn.LSTMCell.from_layer(lstm, layer=k) for k in range(lstm.num_layers)]
    out, states = model(known)
    h_n, c_n = states[0]
    state = [(h_n[k], c_n[k]) for k in range(len(cells))]
    value, outputs = out[-1], [out[:, :, 0]]
    for _ in range(future):
        x = value
        for k, cell in enumerate(cells):
            state[k] = cell(x, state[k])
            x = state[k][0]
        value = head(x)
        outputs.append(value[None, :, 0])
    return np.concatenate(outputs)


# -- torch's original, when installed ----------------------------------------------
def train_torch(model, train, test, steps, max_iter):
    """(final loss, test loss, seconds, closure calls) of torch's LSTMCell
    loop trained by torch.optim.LBFGS from cyrnn's starting weights, or None
    without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn
    torch.set_num_threads(cyrnn.get_num_threads())

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = nn.LSTMCell(1, HIDDEN, dtype=torch.float64)
            self.lstm2 = nn.LSTMCell(HIDDEN, HIDDEN, dtype=torch.float64)
            self.linear = nn.Linear(HIDDEN, 1, dtype=torch.float64)

        def forward(self, x):  # x (B, T)
            B = x.shape[0]
            h1, c1, h2, c2 = (torch.zeros(B, HIDDEN, dtype=torch.float64) for _ in range(4))
            outputs = []
            for value in x.split(1, dim=1):
                h1, c1 = self.lstm1(value, (h1, c1))
                h2, c2 = self.lstm2(h1, (h2, c2))
                outputs.append(self.linear(h2))
            return torch.cat(outputs, dim=1)

    net = Sequence()
    weights = model[0].state_dict()
    with torch.no_grad():
        for k, cell in enumerate((net.lstm1, net.lstm2)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(torch.from_numpy(weights[f"{name}_l{k}"]))
        for name, value in model[1].state_dict().items():
            getattr(net.linear, name).copy_(torch.from_numpy(value))
    (x, y), (x_test, y_test) = [(torch.from_numpy(a[:, :, 0].T.copy()),
                                 torch.from_numpy(b[:, :, 0].T.copy())) for a, b in (train, test)]
    criterion = nn.MSELoss()
    opt = torch.optim.LBFGS(net.parameters(), lr=0.8, max_iter=max_iter)
    calls = []

    def closure():
        calls.append(None)
        opt.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        return loss

    start = time.perf_counter()
    for step in range(1, steps + 1):
        opt.step(closure)
        with torch.no_grad():
            loss, test_loss = float(criterion(net(x), y)), float(criterion(net(x_test), y_test))
        print(f"  torch step {step:2d}: loss {loss:.3e}  test loss {test_loss:.3e}")
    return loss, test_loss, time.perf_counter() - start, len(calls)


def plot(path, waves, predictions):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    known = waves.shape[1] - 1
    fig, ax = plt.subplots(figsize=(12, 4))
    for k in range(predictions.shape[1]):
        line, = ax.plot(np.arange(known), predictions[:known, k], linewidth=1.5)
        ax.plot(np.arange(known, len(predictions)), predictions[known:, k], ":",
                color=line.get_color(), linewidth=1.5)
    ax.set_title("test waves: fitted (solid), then predicted from its own outputs (dotted)")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="L-BFGS steps (the original: 15)")
    parser.add_argument("--max-iter", type=int, default=60,
                        help="L-BFGS iterations per step (the original: 20)")
    parser.add_argument("--torch-steps", type=int, default=1,
                        help="torch's steps of 20 iterations, to compare the speed")
    parser.add_argument("--length", type=int, default=500,
                        help="points per wave (the original: 1000)")
    parser.add_argument("--future", type=int, default=1000, help="values to predict")
    parser.add_argument("--plot", metavar="PNG", help="draw the test predictions here")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    args = parser.parse_args(argv)

    waves = sine_waves(length=args.length)
    train, test = as_sequences(waves[3:]), as_sequences(waves[:3])
    print(f"{len(waves) - 3} training waves and 3 test waves of {args.length} points; "
          f"{cyrnn.get_num_threads()} thread(s)")
    model = build_model()
    rows = [("torch", train_torch(model, train, test, args.torch_steps, 20)
              if not args.no_torch and args.torch_steps else None)]
    rows.insert(0, ("cyrnn", train_cyrnn(model, train, test, args.steps, args.max_iter)))
    predictions = predict_future(model, test[0], args.future)
    # the waves' future is known: sine_waves draws the same phases for any length
    truth = sine_waves(length=args.length + args.future)[:3].T[-args.future:]
    errors = np.abs(predictions[-args.future:] - truth).max(axis=1)
    print(f"\n{'':8}{'loss':>11}{'test loss':>11}{'seconds':>9}{'evaluations':>13}"
          f"{'ms per evaluation':>19}")
    for name, result in rows:
        if result is not None:
            loss, test_loss, seconds, calls = result
            print(f"{name:8}{loss:11.3e}{test_loss:11.3e}{seconds:9.1f}{calls:13d}"
                  f"{1e3 * seconds / calls:19.0f}")
    print(f"cyrnn's free run, largest error over the test waves (amplitude 1): "
          f"{errors[:100].max():.3f} over the first 100 unseen values, "
          f"{errors.max():.3f} over all {args.future}")
    if args.plot:
        plot(args.plot, waves, predictions)


if __name__ == "__main__":
    main()
