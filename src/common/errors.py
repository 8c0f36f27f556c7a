"""Errors a user of the study can meet, each naming its cause.

Every error the study raises on purpose derives from :class:`StudyError`, so the
CLI can print its message without a traceback and exit non-zero.
"""


class StudyError(Exception):
    """Base class for errors the study raises deliberately."""


class DataError(StudyError, ValueError):
    """Bad input data: the message names the file or folder and what to do."""


class ParameterError(StudyError, ValueError):
    """An unknown experiment, profile or parameter, or a value of the wrong type."""


class StudyWarning(UserWarning):
    """Something left out with a reason the user should see (an unreadable run record, ...).

    The CLI prints each as one line, ``camstudy: warning: <message>``.
    """
