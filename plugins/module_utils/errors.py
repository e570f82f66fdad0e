# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the library code; modules turn them into one clear failure message.

Every error names its cause (``message``) and, where one exists, the next step (``hint``).
``details`` carries structured facts for the task result (never secrets).
"""

from __future__ import annotations


class DualbootError(Exception):
    """Base of every error the library raises on purpose."""

    def __init__(self, message: str, hint: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} Next step: {self.hint}"
        return self.message


class MissingDependency(DualbootError):
    """A Python library or client tool the task needs is not installed where it runs."""


class ConnectionFailed(DualbootError):
    """A database server could not be reached, refused the credentials, or lacks the database."""


class MissingPrivilege(DualbootError):
    """The login role lacks a privilege the step needs; ``details["missing"]`` names each one with its GRANT."""


class InvalidInput(DualbootError):
    """Parameters, files or migrations are malformed or contradict each other."""


class SafetyRefusal(DualbootError):
    """The request would change or lose data on the default entry (or another protected target)."""


class IntegrityError(DualbootError):
    """Data on disk or in a database is not what its manifest or record says (corruption, truncation)."""


class ExternalToolFailed(DualbootError):
    """A client tool (pg_dump, pg_restore, ...) failed or reported an error."""


class OperationFailed(DualbootError):
    """A database operation failed part way; the message says what was left in which state."""
