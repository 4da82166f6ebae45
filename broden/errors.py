"""The one exception type users see: a one-line message naming the thing and what to do."""


class BrodenError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback.

    Command-line entry points catch it, print ``error: <message>`` to stderr and exit with ``exit_code``.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
