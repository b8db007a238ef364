"""The demos' command-line options, each declared once (flag, type,
default, help and the values it takes), from which the parser is built and
the parsed values are checked."""
import math
from typing import NamedTuple


class Option(NamedTuple):
    flag: str
    kind: type = str
    default: object = None
    help: str = ""
    least: float | None = None  # the smallest value taken, if any
    positive: bool = False      # a finite number above zero
    metavar: str | None = None

    @property
    def dest(self):
        return self.flag.lstrip("-").replace("-", "_")


def add_options(parser, options):
    """One argument per option; a help that does not show the default
    itself ends with it."""
    for option in options:
        text = option.help
        if option.default not in (None, "") and "%(default)" not in text:
            text += " (default: %(default)s)"
        parser.add_argument(option.flag, type=option.kind, default=option.default, help=text,
                            metavar=option.metavar)


def check_options(parser, args, options):
    """parser.error naming the first option whose value is out of range."""
    for option in options:
        value = getattr(args, option.dest)
        if option.least is not None and value < option.least:
            parser.error(f"{option.flag} must be >= {option.least}")
        if option.positive and not (value > 0 and math.isfinite(value)):
            parser.error(f"{option.flag} must be a positive number")
