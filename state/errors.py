"""The one error hierarchy of desired.

Owns: every error class that crosses a module boundary. Each API maps these
once into its own format (Nova JSON fault, EC2 XML error, declarative API
status, a stderr line in the CLI). Must never import anything else from the
project.

Families decide what a caller does:
- ``Transient``: retry later with backoff (etcd unreachable, timeouts).
- ``Conflict``: re-read and retry at once (stale resourceVersion).
- ``Terminal``: retrying cannot fix it (controller-runtime's TerminalError): a
  controller records it (a log line, an event on the object) and leaves the
  key until it changes.
- any other error of a reconcile is retried with per-key backoff; an API
  answers it with its status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DesiredError(Exception):
    """Base of every error desired raises on purpose."""

    #: HTTP status the declarative API answers with.
    status: int = 500
    #: Short machine-readable reason, like Kubernetes' Status.reason.
    reason: str = "InternalError"

    def __init__(self, message: str) -> None:
        # messages echo input: one that is not valid Unicode (a lone surrogate) is shown
        # escaped, so that every API can write it in any format
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message


class Transient(DesiredError):
    """The operation may succeed if retried later."""

    status = 503
    reason = "ServiceUnavailable"


class Unavailable(Transient):
    """The backing store (etcd) cannot be reached or did not answer."""


class Terminal(DesiredError):
    """Retrying the same input cannot succeed: the reconcile that raises it is recorded
    and not retried until its key changes. ``obj``: the object it is about (the envelope:
    kind, metadata), for the event; None lets the controller find it in its cache.
    ``reason``: the event's reason (default "Terminal")."""

    status = 422
    reason = "Terminal"

    def __init__(
        self, message: str, obj: dict[str, Any] | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.obj = obj
        if reason:
            self.reason = reason


class TimeLimitExceeded(Transient):
    """A statement ran past the time its caller allowed it and was stopped."""

    reason = "Timeout"


class NotFound(DesiredError):
    status = 404
    reason = "NotFound"


class AlreadyExists(DesiredError):
    status = 409
    reason = "AlreadyExists"


class Conflict(DesiredError):
    """A compare failed: the object changed since it was read."""

    status = 409
    reason = "Conflict"


class Gone(DesiredError):
    """A watch asked for a revision that etcd has compacted away."""

    status = 410
    reason = "Expired"


class BadRequest(DesiredError):
    status = 400
    reason = "BadRequest"


class Unauthorized(DesiredError):
    status = 401
    reason = "Unauthorized"


class Forbidden(DesiredError):
    status = 403
    reason = "Forbidden"


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``path`` is dotted with [i] for items."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Invalid(DesiredError):
    """The object does not satisfy its kind's schema or rules."""

    status = 422
    reason = "Invalid"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        self.errors: list[FieldError] = list(errors or [])
        if self.errors:
            message = message + ": " + "; ".join(str(e) for e in self.errors)
        super().__init__(message)


class UnknownKind(DesiredError):
    """apiVersion/kind is not one desired serves; the message lists the known ones."""

    status = 400
    reason = "UnknownKind"

    def __init__(self, kind: str, known: list[str]) -> None:
        self.kind = kind
        self.known = list(known)
        super().__init__(f"unknown kind {kind!r}; known kinds: {', '.join(self.known)}")
