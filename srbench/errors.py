"""User-facing errors: one root, one way to report them.

Every error a user can fix (a bad setting, a missing file, an unreadable image, a wrong
scale) subclasses :class:`UserError`. The command-line entry points report a ``UserError`` as
one line and exit 2 (:func:`exit_on_user_error`); anything else is a bug and keeps its stack
trace. Dependency-free, so every layer (data, metrics, nn, weights, methods) may raise these.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class UserError(Exception):
    """Bad input or configuration; ``str(err)`` is meant for the user as is (one line)."""


class ConfigError(UserError, ValueError):
    """A config value that is impossible or unknown; the message names the key and what is allowed."""


class NonFiniteOutput(UserError):
    """A method returned NaN or Inf."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or weight file that exists but cannot be used (wrong format, keys or shapes)."""


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, UserError)


def one_line(exc: BaseException | str) -> str:
    text = (exc if isinstance(exc, str) else str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


def report(prog: str, exc: BaseException | str) -> None:
    """Print ``<prog>: error: <one line>`` on stderr."""
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)


@contextlib.contextmanager
def exit_on_user_error(prog: str, *also: type[BaseException]) -> Iterator[None]:
    """Turn a :class:`UserError` (or one of ``also``) into one line on stderr and exit status 2."""
    try:
        yield
    except (UserError, *also) as exc:
        report(prog, exc)
        raise SystemExit(2) from None
