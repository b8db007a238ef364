"""`python -m cyrnn`: the command line. Subcommands:

  demo      train a character-level LSTM language model and sample from it
  forecast  train an LSTM forecaster on the yearly sunspot numbers

The work is in cyrnn._demo_charlm and cyrnn._demo_forecast; this module only
parses arguments. The demos' extra packages (tqdm, statsmodels, matplotlib)
come with `pip install "cyrnn[demo]"`; `--help` works without them."""
import argparse
import sys

from cyrnn import _demo_charlm, _demo_forecast
from cyrnn._demo_options import add_options, check_options
from cyrnn._version import __version__

NEXT_STEPS = """\
Next: read examples/char_lm.py, examples/forecast_sunspots.py and
examples/truncated_bptt.py (short scripts that use the API directly), then
examples/word_language_model.py and examples/time_sequence_prediction.py
(embeddings, tied weights, cells, L-BFGS), and the README's "Training
toolkit" section: Sequential, losses, optim, checkpoints."""


def set_threads(n):
    """Runs cyrnn's time loops on n threads and keeps BLAS at one: cyrnn
    splits its own big products over its threads, and a second, spinning
    BLAS thread pool would only compete with them. The BLAS limit needs
    threadpoolctl (in the `demo` extra); without it a note says so.
    Returns threadpoolctl's limiter or None."""
    import cyrnn
    cyrnn.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: threadpoolctl is not installed, so BLAS keeps its own thread count; "
              "set OPENBLAS_NUM_THREADS=1 (or pip install \"cyrnn[demo]\")", file=sys.stderr)
        return None
    return threadpool_limits(1, user_api="blas")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m cyrnn",
        description="cyrnn demos: fast CPU LSTM/GRU/RNN training in numpy, end to end.",
        epilog="Run `python -m cyrnn COMMAND --help` for a command's options. The demos "
               "want the `demo` extra: pip install \"cyrnn[demo]\" (tqdm, statsmodels, "
               "matplotlib).")
    parser.add_argument("--version", action="version", version=f"cyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p):
        p.add_argument("--threads", type=int, default=1,
                       help="threads for cyrnn's time loops; BLAS is kept at one (default: "
                            "%(default)s; for these small models, and on any busy machine, "
                            "one thread is fastest)")
        p.add_argument("--no-progress", action="store_true",
                       help="print a line now and then instead of tqdm's progress bar")

    demo = sub.add_parser(
        "demo", help="train a character-level LSTM language model and sample text from it",
        description="Trains an LSTM to predict the next character of standard-library "
                    "Python source (shipped with every Python), with truncated BPTT over "
                    "parallel streams of the text, shows the loss falling, and samples "
                    "text from the trained model.")
    add_options(demo, _demo_charlm.OPTIONS)
    common(demo)

    forecast = sub.add_parser(
        "forecast", help="forecast the yearly sunspot numbers and compare with baselines",
        description="Trains LSTM forecasters on the yearly sunspot numbers 1700-2008 "
                    "(shipped in statsmodels), forecasts the held-out last years one "
                    "year ahead, prints MAE/RMSE next to the persistence and 11-year "
                    "seasonal-naive baselines, and plots forecast against truth.")
    add_options(forecast, _demo_forecast.OPTIONS)
    common(forecast)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    set_threads(args.threads)
    module = _demo_charlm if args.command == "demo" else _demo_forecast
    check_options(parser, args, module.OPTIONS)
    try:
        module.run(args, progress=not args.no_progress)
    except (ValueError, OSError, ImportError) as exc:
        print(f"python -m cyrnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    print(NEXT_STEPS)
    return 0
