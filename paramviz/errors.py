"""The one exception type for bad user input.

Anything the user can fix (a wrong path, a corrupt image, an unknown layer, weights of the wrong
architecture) raises :class:`UserError` with a message that says what is wrong and how to fix it.
The CLI prints that message and exits with status 2; library callers can catch it.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message is shown as is."""
