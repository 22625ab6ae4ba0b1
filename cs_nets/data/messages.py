"""Turn exceptions into the one-line details that go into user-facing errors."""


def one_line(err, limit=160):
    """``err`` as ``"TypeName: message"`` on a single line of at most ``limit`` message characters."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:limit]}" if text else type(err).__name__
