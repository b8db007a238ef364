"""The coefficients of the activations' expm1 polynomial (csrc/real.h).

The kernels' exponential reduces its argument to r in [-ln2/2, ln2/2] and
takes e^r - 1 = r * g(r), g a polynomial. Taylor's g needs degree 12 for
double and 6 for float to reach the rounding error; a near-minimax g
(Chebyshev's fit of expm1(r) / r on that interval) reaches it with degree 10
and 5: two multiply-adds fewer in each exponential for double, one for
float (an LSTM unit takes five exponentials).

Prints, for each type, the coefficients rounded to it and the error of
r * g(r) evaluated in that type without fused multiply-adds (level 0's
SSE2; FMA only rounds less), in units of the type's epsilon: absolute
(what 2^n * (1 + p) sees) and relative to expm1(r) (what tanh near zero
sees), beside Taylor's for comparison.

    python tools/expm1_coefficients.py      # needs mpmath (pip install mpmath)
"""
import math

import mpmath
import numpy as np

# the reduced argument's bound, widened for the rounding of r itself
BOUND = math.log(2) / 2 * 1.0001
# g's degree for each type: the near-minimax fit's, and Taylor's that is as
# accurate (one degree less of Taylor's errs by about an epsilon)
DEGREES = {np.float64: (10, 12), np.float32: (5, 6)}


def near_minimax(degree):
    """g's coefficients, lowest first, to 40 digits."""
    mpmath.mp.dps = 40
    g = lambda r: mpmath.expm1(r) / r if r else mpmath.mpf(1)
    poly = mpmath.chebyfit(g, [-BOUND, BOUND], degree + 1)
    return [float(c) for c in reversed(poly)]


def taylor(degree):
    return [1 / math.factorial(k + 1) for k in range(degree + 1)]


def errors(coefficients, dtype):
    """Max error of r * g(r) in dtype arithmetic, in epsilons: (absolute,
    relative)."""
    r = np.linspace(-BOUND, BOUND, 400001).astype(dtype)
    c = [dtype(x) for x in coefficients]
    acc = np.full_like(r, c[-1])
    for coefficient in c[-2::-1]:
        acc = acc * r + coefficient
    p = r * acc
    want = np.expm1(r.astype(np.longdouble))
    nonzero = r != 0
    eps = np.finfo(dtype).eps
    return (float(np.max(np.abs(p - want)) / eps),
            float(np.max(np.abs(p - want)[nonzero] / np.abs(want[nonzero])) / eps))


def c_literal(value, dtype):
    """The shortest decimal that rounds to value in dtype, as C writes it."""
    text = np.format_float_scientific(dtype(value), unique=True, trim="-")
    return text + ("f" if dtype is np.float32 else "")


def main():
    for dtype, (degree, taylor_degree) in DEGREES.items():
        coefficients = near_minimax(degree)
        print(f"{dtype.__name__}: g of degree {degree}")
        print("  coefficients:", ", ".join(c_literal(c, dtype) for c in coefficients))
        print("  error (absolute, relative) in eps: %.3f, %.3f" % errors(coefficients, dtype))
        print(f"  Taylor's g of degree {taylor_degree}: %.3f, %.3f"
              % errors(taylor(taylor_degree), dtype))


if __name__ == "__main__":
    main()
