# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's exceptions: every module_utils file may import this one, and it imports nothing of ours.

No transport and no Docker SDK here, so the pure modules (references, selection, planner, snapshot records) raise
these without pulling in a connection. A module turns a ``JanitorError`` into ``fail_json(msg=error.message)``.
"""

from __future__ import annotations


class JanitorError(Exception):
    """An error meant for the operator: the message says what went wrong and what to do."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class SDKMissingError(JanitorError):
    """The Docker SDK for Python is not installed where the module runs."""


class EngineUnreachableError(JanitorError):
    """The engine could not be reached, or stopped answering (a lost connection, a timeout).

    ``timed_out`` is true when the engine took longer than ``timeout`` to answer: the request may still be carried
    out, so it is never sent again.
    """

    def __init__(self, message, timed_out=False, **details):
        super().__init__(message, **details)
        self.timed_out = timed_out


class AnswerLostError(EngineUnreachableError):
    """The request reached the engine (or may have), but its answer was lost or unreadable.

    The engine may have carried the request out: what it did is read back from the engine's state, never guessed,
    and the request is never sent again.
    """


class EngineAPIError(JanitorError):
    """The engine answered with an error status."""

    def __init__(self, message, status=None, explanation="", **details):
        super().__init__(message, **details)
        self.status = status
        self.explanation = explanation


class ExecutionError(JanitorError):
    """A step of a real run failed; ``result`` holds what the engine had confirmed until then."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def shown(value, limit=120):
    """A value as a message shows it: its repr, cut to ``limit`` characters (an odd answer may be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def unforeseen(exc, module):
    """The message for an error no code of ours foresaw (a bug): what it was, and what the operator can rely on.
    The module hands the traceback to ``fail_json(exception=...)``, which Ansible shows only with ``-vvv``."""
    return (f"{module} stopped on an error it did not foresee ({type(exc).__name__}: {exc}); this is a bug in "
            f"janitor.docker, please report it with the task's arguments (the traceback is shown with -vvv). "
            f"Removals already confirmed by the engine are not listed here: run the task in check mode to see the "
            f"engine's state")
