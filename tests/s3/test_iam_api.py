"""IAM query API error mapping (titans3/s3/iam_api.py): object-layer failures
under the directory reach IAM clients with IAM's codes."""

from __future__ import annotations

from titans3.core.errors import AccessDenied, OperationAborted, QuorumError
from titans3.s3.iam_api import _error, iam_error_of


def test_racing_updates_are_iams_concurrent_modification() -> None:
    err = iam_error_of(OperationAborted("Another update of this record is in progress; please try again."))
    assert (err.code, err.status, err.sender) == ("ConcurrentModification", 409, True)
    body = _error(err, "RID").body
    assert b"<Code>ConcurrentModification</Code>" in body and b"<Type>Sender</Type>" in body


def test_too_few_drives_is_a_retryable_service_failure() -> None:
    err = iam_error_of(QuorumError())
    assert (err.code, err.status, err.sender) == ("ServiceFailure", 503, False)
    assert b"<Type>Receiver</Type>" in _error(err, "RID").body


def test_other_client_errors_keep_their_code() -> None:
    err = iam_error_of(AccessDenied())
    assert (err.code, err.status) == ("AccessDenied", 403)
