"""The project's speed targets (issue 4), checked against compare.py's rows.

Printed ratios are rounded to two decimals, so a ratio shown as 0.85 may be
0.854 and miss a <= 0.85 target: this check reads the unrounded values and
shows three decimals. A target whose cases did not run is left out. The
two-thread targets are the LSTM's at medium and large (and tiny); the other
cases' speed-ups are in compare.py's own two-thread summary.

Each target is (label, threads, case, mode, measure, goal):
measure(row, rows, one_thread) gives the figure (one_thread: the name compare.py
gives cyrnn on one thread inside a wider pass), goal(figure) whether it holds.

The targets depend on compare.py's --cpu-level (targets(level)): level 2, and
no --cpu-level, the project's targets above; level 1 (AVX2+FMA) the same,
against torch capped to AVX2 in the same run, with the share of SGEMM at
>= 0.85 of that run's SGEMM (OpenBLAS capped alike) instead of 0.88, and
without the targets against onnxruntime when compare.py left it out (it has no
cap); level 0 (baseline x86-64) cyrnn/torch <= 1 for the LSTM, GRU and RNN tanh
at small, medium and large, inference and training step, on one thread.
At every level, compare.py --step's rows (streaming, one step per call;
issue 20): the tiny LSTM's step in at most 2 us, the small one's within 1.5x
of the gemv of its weights measured in the same rounds.
"""

SIZES = ("tiny", "small", "medium", "large")
TRAIN_LIMITS = {"tiny": 0.4, "small": 0.85, "medium": 0.85, "large": 0.95}


def _ratio(peer):
    def measure(row, rows, one_thread):
        return row["ratios"].get(peer)
    return measure


def _both_peers(row, rows, one_thread):
    """cyrnn against the faster of torch and onnxruntime: the larger ratio."""
    found = [row["ratios"][p] for p in ("torch", "onnxrt") if p in row["ratios"]]
    return max(found) if len(found) == 2 else None


def _gemm_share(row, rows, one_thread):
    cy, peak = row["medians"].get("cyrnn"), row["gemm_gflops"]
    return row["flops"] / cy / 1e9 / peak if cy and peak else None


def _against_case(base):
    """cyrnn's time over its time on case `base` (same mode, same pass)."""
    def measure(row, rows, one_thread):
        other = rows.get((base, row["mode"]))
        return None if other is None else row["medians"]["cyrnn"] / other["medians"]["cyrnn"]
    return measure


def _speedup(row, rows, one_thread):
    ratio = row["ratios"].get(one_thread)
    return None if ratio is None else 1 / ratio


def _speedup_interval_top(row, rows, one_thread):
    """The top of the speed-up's 95% interval: 'not slower' unless it lies
    below 1x, as compare.py's own summary reads it. Too few rounds for an
    interval (--quick): the speed-up itself."""
    interval = row["ratio_intervals"].get(one_thread)
    return _speedup(row, rows, one_thread) if interval is None else 1 / interval[0]


def _at_most(limit):
    return f"<= {limit:g}", lambda value: value <= limit


def _at_least(limit):
    return f">= {limit:g}", lambda value: value >= limit


# level 1's share of the same run's SGEMM for the large LSTM's inference
LEVEL1_GEMM_SHARE = 0.85


def _targets():
    out = []
    for size in SIZES:
        out.append((f"LSTM {size} inference vs the faster peer", 1, f"lstm-{size}",
                    "inference", _both_peers, _at_most(1.0)))
    out.append(("LSTM large inference, share of SGEMM", 1, "lstm-large", "inference",
                _gemm_share, _at_least(0.88)))
    for size in SIZES:
        out.append((f"LSTM {size} training vs torch", 1, f"lstm-{size}", "train step",
                    _ratio("torch"), _at_most(TRAIN_LIMITS[size])))
    for cell, name, torch_limit, train_limit in (("gru", "GRU", 0.8, 0.75),
                                                 ("rnn_tanh", "RNN tanh", 0.7, 0.7),
                                                 ("rnn_relu", "RNN relu", 0.7, 0.7)):
        case = f"{cell}-medium"
        out.append((f"{name} inference vs onnxrt", 1, case, "inference", _ratio("onnxrt"),
                    _at_most(1.0)))
        out.append((f"{name} inference vs torch", 1, case, "inference", _ratio("torch"),
                    _at_most(torch_limit)))
        out.append((f"{name} training vs torch", 1, case, "train step", _ratio("torch"),
                    _at_most(train_limit)))
    for mode in ("inference", "train step"):
        out.append((f"LSTM float64 {mode} vs torch", 1, "lstm-medium-f64", mode,
                    _ratio("torch"), _at_most(0.8)))
        out.append((f"ragged / full length, {mode}", 1, "lstm-medium-ragged", mode,
                    _against_case("lstm-medium"), _at_most(0.75)))
    for size in ("medium", "large"):
        for mode in ("inference", "train step"):
            out.append((f"2 threads, LSTM {size} {mode}", 2, f"lstm-{size}", mode, _speedup,
                        _at_least(1.7)))
    for mode in ("inference", "train step"):
        out.append((f"2 threads, LSTM tiny {mode}: interval reaches 1x", 2, "lstm-tiny", mode,
                    _speedup_interval_top, _at_least(1.0)))
    return out + _variant_targets()


def _variant_targets():
    """The cell variants against their base cells, cyrnn alone (issue 19):
    at every level."""
    out = []
    for mode in ("inference", "train step"):
        out.append((f"peephole LSTM / LSTM, {mode}", 1, "lstm_peephole-medium", mode,
                    _against_case("lstm-medium"), _at_most(1.1)))
        out.append((f"reset-before GRU / GRU, {mode}", 1, "gru_reset_before-medium", mode,
                    _against_case("gru-medium"), _at_most(1.35)))
    return out


def _microseconds(row, rows, one_thread):
    return row["medians"]["cyrnn"] * 1e6


def _step_targets():
    """Streaming inference, one step per call (compare.py --step; issue 20):
    at every level. The floor is the faster of a BLAS gemv and numpy's
    matmul of the step's concatenated weights by a vector, in the same
    rounds."""
    return [("LSTM tiny step (I=16, H=32, B=1), us per step", 1, "lstm-tiny-step", "step",
             _microseconds, _at_most(2.0)),
            ("LSTM small step (I=64, H=128, B=1) / the gemv of its weights", 1,
             "lstm-small-step", "step", _ratio("floor"), _at_most(1.5))]


TARGETS = _targets() + _step_targets()


def _level1_targets(left_out):
    """Level 2's targets at AVX2+FMA; the share of SGEMM at LEVEL1_GEMM_SHARE.
    With onnxruntime left out, the faster peer is torch, and the targets
    against onnxruntime alone are dropped (listed in the second value)."""
    out, dropped = [], []
    for target in TARGETS:
        label, threads, case, mode, measure, goal = target
        if measure is _gemm_share:
            target = ("LSTM large inference, share of the same run's SGEMM", threads, case,
                      mode, measure, _at_least(LEVEL1_GEMM_SHARE))
        elif "onnxrt" in left_out and measure is _both_peers:
            target = (label.replace("the faster peer", "torch"), threads, case, mode,
                      _ratio("torch"), goal)
        elif "onnxrt" in left_out and label.endswith("vs onnxrt"):
            dropped.append(target)
            continue
        out.append(target)
    return out, dropped


def _level0_targets():
    out = []
    for cell, name in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "RNN tanh")):
        for size in ("small", "medium", "large"):
            for mode, text in (("inference", "inference"), ("train step", "training")):
                out.append((f"{name} {size} {text} vs torch", 1, f"{cell}-{size}", mode,
                            _ratio("torch"), _at_most(1.0)))
    return out + _variant_targets() + _step_targets()


def targets(level=None, left_out=()):
    """The targets for compare.py's --cpu-level `level` (None: not capped),
    and those dropped because a peer in `left_out` (left out of the run at
    this level) is their only reference."""
    if level is None or level == 2:
        return TARGETS, []
    if level == 1:
        return _level1_targets(left_out)
    return _level0_targets(), []


def report(passes, one_thread, out, level=None, left_out=(), checked_at=None):
    """passes: {threads: rows} as compare.py builds them; level, left_out:
    see targets(); checked_at: the level in words, for the heading. Prints
    one line per target that ran; returns the labels of those that missed."""
    lines, missed = [], []
    by_pass = {threads: {(r["case"].name, r["mode"]): r for r in rows}
               for threads, rows in passes.items()}
    chosen, dropped = targets(level, left_out)
    for label, threads, case, mode, measure, (goal_text, holds) in chosen:
        rows = by_pass.get(threads, {})
        row = rows.get((case, mode))
        value = None if row is None else measure(row, rows, one_thread)
        if value is None:
            continue
        ok = holds(value)
        lines.append(f"| {label} | {goal_text} | {value:.3f} | {'yes' if ok else 'MISSED'} |")
        if not ok:
            missed.append(label)
    if not lines:
        return missed
    if checked_at is None:
        checked_at = "no cap" if level is None else f"level {level}"
    out(f"\n### speed targets at {checked_at} (unrounded, from the tables above)\n")
    out("| target | goal | measured | holds |")
    out("|---|---|---:|---|")
    for line in lines:
        out(line)
    out("")
    out(f"- {len(lines) - len(missed)} of {len(lines)} held"
        + ("" if level is None else f" at level {level}")
        + (f"; missed: {', '.join(missed)}" if missed else ""))
    dropped = [label for label, threads, case, mode, *_ in dropped
               if (case, mode) in by_pass.get(threads, {})]
    if dropped:
        out(f"- not checked at this level ({', '.join(left_out)} left out: no instruction-set "
            "cap): "
            + ", ".join(dropped))
    return missed
