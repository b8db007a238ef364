"""One-year-ahead forecasts of the yearly sunspot numbers with a small LSTM,
against the persistence and 11-year seasonal-naive baselines (what
`python -m cyrnn forecast` does, with one model instead of an ensemble).

    pip install statsmodels matplotlib      # or: pip install "cyrnn[demo]"
    python examples/forecast_sunspots.py    # ~10 s; writes sunspots.png
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from statsmodels.datasets import sunspots

import cyrnn
from cyrnn import losses, optim

data = sunspots.load_pandas().data
years, y = data["YEAR"].to_numpy().astype(int), data["SUNACTIVITY"].to_numpy()
test = 40                                          # hold out 1969-2008
mean, std = y[:-test].mean(), y[:-test].std()
z = (y - mean) / std                               # standardised with training statistics only
train = z[:-test]

model = cyrnn.Sequential(cyrnn.LSTM(1, 32, dtype=np.float64, seed=0),
                         cyrnn.Linear(32, 1, dtype=np.float64, seed=1))
opt = optim.Adam(model.parameters(), lr=1e-2)
rng = np.random.default_rng(0)
W, burn_in = 40, 10                                # windows of 40 years; the first 10 warm the state up
for step in range(800):
    starts = rng.integers(0, len(train) - W, 32)
    window = train[starts + np.arange(W + 1)[:, None]][..., None]     # (W+1, 32, 1)
    out, _, tape = model.forward(window[:-1])
    loss, d = losses.mse(out[burn_in:], window[burn_in + 1:])
    dout = np.zeros_like(out)
    dout[burn_in:] = d
    grads = model.backward(tape, dout).params
    optim.clip_grad_norm(grads, 1.0)
    opt.step(grads)

# One pass over the whole series: out[t] predicts year t+1 from the true years up to t.
out, _ = model(z[:-1, None, None])
forecast = out[-test:, 0, 0] * std + mean
truth = y[-test:]
for name, f in [("LSTM", forecast), ("persistence", y[-test - 1:-1]),
                ("seasonal naive (11 y)", y[-test - 11:-11])]:
    err = f - truth
    print(f"{name:22s} MAE {np.abs(err).mean():6.2f}   RMSE {np.sqrt((err ** 2).mean()):6.2f}")

plt.figure(figsize=(10, 4))
plt.plot(years[-120:], y[-120:], color="0.6", label="sunspot number")
plt.plot(years[-test:], forecast, color="tab:red", label="LSTM, one year ahead")
plt.legend()
plt.savefig("sunspots.png")
print("wrote sunspots.png")
