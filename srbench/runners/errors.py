"""User-facing errors: reported as one line and a non-zero exit, never a library stack trace."""

from __future__ import annotations


class UserError(RuntimeError):
    """Bad input or configuration; the message is meant for the user as is."""


class NonFiniteOutput(UserError):
    """A method returned NaN or Inf."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from srbench.data.base import DatasetError
    from srbench.method import DuplicateMethod, UnknownMethod, UnsupportedInput
    from srbench.results.store import ResultsError
    from srbench.training import CheckpointError
    from srbench.weights import MissingWeightsError, WeightsFormatError

    types: list[type[BaseException]] = [UserError, DatasetError, UnsupportedInput, UnknownMethod, DuplicateMethod,
                                        MissingWeightsError, WeightsFormatError, ResultsError, CheckpointError]
    try:
        from srbench.data.io import ImageReadError

        types.append(ImageReadError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from srbench.metrics import ShapeMismatchError, UnknownProfile

        types += [ShapeMismatchError, UnknownProfile]
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, _user_error_types())


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
