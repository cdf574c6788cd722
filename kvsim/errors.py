"""The one exception type for bad input at kvsim's boundary.

Raise ``KvsimError`` (or a subclass) for anything a user can fix: a malformed trace line, a config that
cannot fit the model in GPU memory, a profile of the wrong schema. The message names the input and the fix.
The CLI prints it as ``Error: <message>`` with exit status 2 and no traceback. Internal invariants use
``assert``, never this type.
"""


class KvsimError(ValueError):
    """Bad input, explained: what was wrong, where, and how to fix it."""
