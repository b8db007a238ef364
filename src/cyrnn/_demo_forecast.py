"""`python -m cyrnn forecast`: one-year-ahead forecasts of the sunspot numbers.

The data are the yearly mean sunspot numbers 1700-2008 that statsmodels
ships (statsmodels.datasets.sunspots), or any one-column series from a CSV
file (--data). The last years are held out; small LSTM forecasters
(Sequential(LSTM, Linear), an ensemble over seeds) learn to predict next
year's value from the years so far, on random windows of the training
years; their forecasts of the held-out years (each made from the true
values up to the year before) are scored against the persistence
(same as last year) and seasonal-naive (same as one solar cycle, 11 years,
ago) baselines, and plotted. The data loading and plotting import their
packages only when called, so the rest runs (and is tested) without them.
"""
import time

import numpy as np

import cyrnn
from cyrnn import losses, optim
from cyrnn._demo_options import Option
from cyrnn._progress import Progress


# -- data --------------------------------------------------------------------
def load_sunspots():
    """(years, values): the yearly sunspot numbers 1700-2008 from statsmodels."""
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        raise ImportError("the forecast demo reads the sunspot numbers from statsmodels: "
                          "pip install \"cyrnn[demo]\" (or pass --data FILE.csv)") from None
    frame = sunspots.load_pandas().data
    return (np.asarray(frame["YEAR"], dtype=np.float64).astype(np.int64),
            np.asarray(frame["SUNACTIVITY"], dtype=np.float64))


def load_csv(path):
    """(index, values) from a CSV file of one column (values) or two (index,
    value); a first line that is not numbers is taken as a header."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = [s.strip() for s in line.split(",")]
            try:
                rows.append([float(s) for s in fields])
            except ValueError:
                if rows or number > 1:
                    raise ValueError(f"{path}, line {number}: not numbers: {line!r}") from None
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) not in (1, 2):
        raise ValueError(f"{path} must hold one column (values) or two (index, value), "
                         f"the same on every line")
    table = np.array(rows)
    values = table[:, -1]
    index = table[:, 0] if table.shape[1] == 2 else np.arange(len(values), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path} holds values that are not finite numbers")
    if np.all(index == np.round(index)):
        index = index.astype(np.int64)
    return index, values


# -- baselines and scores ----------------------------------------------------
def persistence(values, start):
    """Forecasts of values[start:]: each the value one step earlier."""
    return values[start - 1:-1].copy()


def seasonal_naive(values, start, season):
    """Forecasts of values[start:]: each the value `season` steps earlier."""
    if not 1 <= season <= start:
        raise ValueError(f"season must lie in [1, {start}], got {season}")
    return values[start - season:len(values) - season].copy()


def scores(forecast, truth):
    """{'mae': ..., 'rmse': ...} of forecast against truth."""
    error = np.asarray(forecast, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}


# -- the model -----------------------------------------------------------------
def build_model(hidden_size=32, *, seed=0):
    """Sequential(LSTM(1 -> hidden_size), Linear(hidden_size -> 1)) in float64."""
    return cyrnn.Sequential(cyrnn.LSTM(1, hidden_size, seed=seed, dtype=np.float64),
                            cyrnn.Linear(hidden_size, 1, seed=seed + 1, dtype=np.float64))


def train_forecaster(z, *, hidden_size=32, steps=800, window=40, batch_size=32, lr=1e-2,
                     clip=1.0, seed=0, progress=None):
    """Trains one model to predict z[t+1] from z[..t] (z: the standardised
    training series) on random windows of window+1 values; the first
    `burn_in` = min(10, window // 2) steps of each window warm the state up
    and are not scored. Returns (model, per-step losses)."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) < window + 2:
        raise ValueError(f"the training series ({len(z)} values) must be longer than "
                         f"window + 1 = {window + 1}")
    rng = np.random.default_rng(seed)
    model = build_model(hidden_size, seed=seed)
    opt = optim.Adam(model.parameters(), lr=lr)
    burn_in = min(10, window // 2)
    offsets = np.arange(window + 1)[:, None]
    history = []
    for _ in range(steps):
        starts = rng.integers(0, len(z) - window, batch_size)
        chunk = z[starts[None, :] + offsets][..., None]         # (window+1, B, 1)
        out, _, tape = model.forward(chunk[:-1])
        loss, d = losses.mse(out[burn_in:], chunk[1:][burn_in:])
        dout = np.zeros_like(out)
        dout[burn_in:] = d
        grads = model.backward(tape, dout, input_grad=False).params
        optim.clip_grad_norm(grads, clip)
        opt.step(grads)
        history.append(float(loss))
        if progress is not None:
            progress.update(1, loss=float(np.mean(history[-20:])))
    return model, history


def one_step_forecasts(model, z):
    """Forecasts of z[1:], each from the true values before it (one pass)."""
    out, _ = model(np.asarray(z, dtype=np.float64)[:-1, None, None])
    return out[:, 0, 0]


def forecast_series(values, test_size, *, ensemble=5, hidden_size=32, steps=800, window=40,
                    batch_size=32, lr=1e-2, seed=0, progress=True):
    """Trains `ensemble` models on values[:-test_size] and returns their mean
    one-step-ahead forecasts of values[-test_size:] (in the data's units),
    the training losses of each model and the last model. progress: True
    for tqdm's bar (plain lines without tqdm), False for lines, None for
    silence."""
    values = np.asarray(values, dtype=np.float64)
    if not 1 <= test_size < len(values):
        raise ValueError(f"test_size must lie in [1, {len(values) - 1}], got {test_size}")
    train = values[:-test_size]
    mean, std = train.mean(), train.std()
    std = std if std > 0 else 1.0
    z = (values - mean) / std
    forecasts, histories = [], []
    with Progress(ensemble * steps, "training", bar=progress) as bar:
        for member in range(ensemble):
            model, history = train_forecaster(
                z[:-test_size], hidden_size=hidden_size, steps=steps, window=window,
                batch_size=batch_size, lr=lr, seed=seed + 100 * member, progress=bar)
            forecasts.append(one_step_forecasts(model, z)[-test_size:] * std + mean)
            histories.append(history)
    return np.mean(forecasts, axis=0), histories, model


# -- the plot ------------------------------------------------------------------
def plot(path, index, values, test_size, forecasts, *, title="", ylabel="value",
         context=80):
    """Writes a PNG of the last `context` training values, the held-out
    truth and each forecast (a dict label -> array over the held-out part)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install \"cyrnn[demo]\" "
                          "(or pass --plot '' to skip it)") from None
    start = len(values) - test_size
    lo = max(0, start - context)
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(index[lo:start + 1], values[lo:start + 1], color="0.6", label="training data")
    ax.plot(index[start:], values[start:], color="black", linewidth=2, label="truth (held out)")
    styles = [dict(color="tab:red", linewidth=2), dict(color="tab:blue", linestyle="--"),
              dict(color="tab:green", linestyle=":")]
    for (label, forecast), style in zip(forecasts.items(), styles * 3):
        ax.plot(index[start:], forecast, label=label, **style)
    ax.axvline(index[start], color="0.8", linestyle="-", linewidth=1)
    ax.set_title(title)
    ax.set_xlabel("year")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- the command ---------------------------------------------------------------
OPTIONS = (
    Option("--data", metavar="CSV",
           help="forecast this series instead (one column of values, or two: "
                "index,value; a header line is skipped)"),
    Option("--test-size", int, 40,
           "held-out last values (default: %(default)s years, 1969-2008)", least=1),
    Option("--season", int, 11, "period of the seasonal-naive baseline (default: "
                                "%(default)s, the solar cycle in years)", least=1),
    Option("--ensemble", int, 5, "models trained with different seeds and averaged",
           least=1),
    Option("--steps", int, 800, "Adam steps per model", least=1),
    Option("--hidden-size", int, 32, "LSTM units", least=1),
    Option("--window", int, 40, "length of the training windows", least=1),
    Option("--batch-size", int, 32, "windows per step", least=1),
    Option("--lr", float, 1e-2, "Adam's learning rate", positive=True),
    Option("--seed", int, 0, "seed", least=0),
    Option("--plot", str, "forecast.png", "where to write the plot (default: %(default)s "
                                           "in the current directory; '' for no plot)",
           metavar="PNG"),
)


def run(args, *, progress=True, out=print):
    """The forecast demo from parsed arguments; returns a summary dict."""
    if args.data:
        index, values = load_csv(args.data)
        name = ylabel = args.data
    else:
        index, values = load_sunspots()
        name = "yearly sunspot numbers (statsmodels)"
        ylabel = "yearly mean sunspot number"
    n, test = len(values), args.test_size
    if test + args.window + 2 > n or args.season > n - test:
        raise ValueError(f"the series has {n} values: too few for --test-size {test}, "
                         f"--window {args.window} and --season {args.season}")
    start = n - test
    out(f"data: {name}, {n} values ({index[0]}-{index[-1]}); training on the first {start}, "
        f"forecasting the last {test} ({index[start]}-{index[-1]}) one step ahead")
    out(f"model: LSTM {args.hidden_size} + Linear head, ensemble of {args.ensemble}, "
        f"{args.steps} steps each on windows of {args.window}")
    began = time.perf_counter()
    lstm, histories, _ = forecast_series(
        values, test, ensemble=args.ensemble, hidden_size=args.hidden_size, steps=args.steps,
        window=args.window, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        progress=progress)
    seconds = time.perf_counter() - began
    truth = values[start:]
    results = {
        f"LSTM (ensemble of {args.ensemble})": lstm,
        "persistence (last value)": persistence(values, start),
        f"seasonal naive ({args.season} back)": seasonal_naive(values, start, args.season),
    }
    table = {label: scores(forecast, truth) for label, forecast in results.items()}
    out(f"\ntrained in {seconds:.1f} s; training loss (standardised MSE) "
        f"{np.mean([h[0] for h in histories]):.3f} -> "
        f"{np.mean([np.mean(h[-20:]) for h in histories]):.3f}")
    out(f"\none-step-ahead errors on the {test} held-out values:")
    width = max(len(label) for label in table)
    out(f"  {'':{width}}  {'MAE':>8}  {'RMSE':>8}")
    for label, s in table.items():
        out(f"  {label:{width}}  {s['mae']:8.2f}  {s['rmse']:8.2f}")
    if args.plot:
        plot(args.plot, index, values, test, results,
             title=f"{name}: one-step-ahead forecasts of the held-out values",
             ylabel=ylabel)
        out(f"\nwrote the plot to {args.plot}")
    return {"scores": table, "seconds": seconds, "forecast": lstm}
