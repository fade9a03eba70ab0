"""The one error parsers raise: its message is shown to the person who uploaded the file."""


class ParseError(Exception):
    """A file that cannot become text; ``str(exc)`` is a human sentence."""
