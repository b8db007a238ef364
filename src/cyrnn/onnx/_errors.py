"""What can be wrong with a file, as the reading raises it; load_graph words
it as a ValueError naming the file."""


class BadModel(Exception):
    """A problem with the file; load reports it as a ValueError."""


class SwappedAxes(BadModel):
    """The data input's two leading axes were read the wrong way round."""


def quoted(name, width=80):
    """A name from the file, quoted and cut short for an error message."""
    text = repr(str(name))
    return text if len(text) <= width else text[:width - 4] + "...'"
