"""Typed errors shared by every layer.

Theory of operation
-------------------
Lower layers raise *typed* exceptions; exactly one place (``titans3.s3.xml``)
turns an :class:`S3Error` into the XML body a client expects, and the CLI turns
them into one-line messages.  Nothing below the fronts knows about HTTP except
the status code each S3 error family carries, because AWS fixes that pairing.

Internal failures that are not the client's fault (a drive that went away, a
quorum that could not be reached) are also S3 errors -- ``InternalError`` /
``ServiceUnavailable`` / ``SlowDown`` -- so a front never has to guess and never
shows a traceback to a client.
"""

from __future__ import annotations


class TitanError(Exception):
    """Root of every error TitanS3 raises on purpose."""


# --------------------------------------------------------------------------- S3
class S3Error(TitanError):
    """An error with an AWS S3 error code.  Subclasses fix ``code``/``status``."""

    code: str = "InternalError"
    status: int = 500
    default_message: str = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: str) -> None:
        self.message = message or self.default_message
        # Extra elements AWS puts in the error body (BucketName, Key, ...).
        self.extra: dict[str, str] = {k: str(v) for k, v in extra.items()}
        # Response headers AWS sends with this error (x-amz-delete-marker, Allow, ...).
        self.headers: list[tuple[str, str]] = []
        super().__init__(f"{self.code}: {self.message}")


def _s3(code: str, status: int, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": status, "default_message": message})


AccessDenied = _s3("AccessDenied", 403, "Access Denied")
SignatureDoesNotMatch = _s3(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)
InvalidAccessKeyId = _s3(
    "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
)
RequestTimeTooSkewed = _s3(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the current time is too large.",
)
MissingSecurityHeader = _s3(
    "MissingSecurityHeader", 400, "Your request was missing a required header."
)
AuthorizationHeaderMalformed = _s3(
    "AuthorizationHeaderMalformed", 400, "The authorization header is malformed."
)
AuthorizationQueryParametersError = _s3(
    "AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter."
)
XAmzContentSHA256Mismatch = _s3(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
IncompleteBody = _s3(
    "IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header."
)
BadDigest = _s3("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
InvalidDigest = _s3("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
InvalidRequest = _s3("InvalidRequest", 400, "Invalid Request")
InvalidStorageClass = _s3("InvalidStorageClass", 400,
                          "The storage class you specified is not valid")
InvalidArgument = _s3("InvalidArgument", 400, "Invalid Argument")
InvalidBucketName = _s3("InvalidBucketName", 400, "The specified bucket is not valid.")
KeyTooLongError = _s3("KeyTooLongError", 400, "Your key is too long")
InvalidURI = _s3("InvalidURI", 400, "Couldn't parse the specified URI.")
MalformedXML = _s3(
    "MalformedXML",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema.",
)
MetadataTooLarge = _s3(
    "MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."
)
EntityTooSmall = _s3(
    "EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."
)
EntityTooLarge = _s3(
    "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size."
)
InvalidPart = _s3(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found. The part may not have been "
    "uploaded, or the specified entity tag may not match the part's entity tag.",
)
InvalidPartOrder = _s3(
    "InvalidPartOrder",
    400,
    "The list of parts was not in ascending order. Parts must be ordered by part number.",
)
MissingContentLength = _s3(
    "MissingContentLength", 411, "You must provide the Content-Length HTTP header."
)
NoSuchBucket = _s3("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _s3("NoSuchKey", 404, "The specified key does not exist.")
NoSuchVersion = _s3(
    "NoSuchVersion", 404, "The specified version does not exist."
)
NoSuchUpload = _s3(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may "
    "have been aborted or completed.",
)
MethodNotAllowed = _s3(
    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
)
BucketAlreadyExists = _s3(
    "BucketAlreadyExists",
    409,
    "The requested bucket name is not available. The bucket namespace is shared by all "
    "users of the system. Please select a different name and try again.",
)
BucketAlreadyOwnedByYou = _s3(
    "BucketAlreadyOwnedByYou",
    409,
    "Your previous request to create the named bucket succeeded and you already own it.",
)
BucketNotEmpty = _s3("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
OperationAborted = _s3(
    "OperationAborted",
    409,
    "A conflicting conditional operation is currently in progress against this resource. "
    "Please try again.",
)
PreconditionFailed = _s3(
    "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"
)
InvalidRange = _s3("InvalidRange", 416, "The requested range is not satisfiable")
InvalidPartNumber = _s3("InvalidPartNumber", 400, "The requested partnumber is not satisfiable")
ConditionalRequestConflict = _s3(
    "ConditionalRequestConflict",
    409,
    "A conflicting operation occurred. If using PutObject you can retry the request. If using "
    "multipart upload you should initiate another CreateMultipartUpload request and re-upload "
    "each part.",
)
InternalError = _s3(
    "InternalError", 500, "We encountered an internal error. Please try again."
)
NotImplementedS3 = _s3(
    "NotImplemented", 501, "A header you provided implies functionality that is not implemented"
)
ServiceUnavailable = _s3(
    "ServiceUnavailable", 503, "Please reduce your request rate."
)
SlowDown = _s3("SlowDown", 503, "Please reduce your request rate.")
# AWS has no full-disk answer; MinIO's is what S3 clients and tools know (507, not retried).
StorageFull = _s3(
    "XMinioStorageFull", 507,
    "Storage backend has reached its minimum free drive threshold. Please delete a few "
    "objects to proceed.",
)
# Bucket configuration (CORS, tagging, location).
BadRequest = _s3("BadRequest", 400, "Bad Request")
AccessForbidden = _s3("AccessForbidden", 403, "Access Forbidden")
InvalidTag = _s3("InvalidTag", 400, "The TagKey you have provided is invalid")
NoSuchTagSet = _s3("NoSuchTagSet", 404, "The TagSet does not exist")
NoSuchCORSConfiguration = _s3(
    "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist"
)
InvalidLocationConstraint = _s3(
    "InvalidLocationConstraint", 400, "The specified location-constraint is not valid"
)
IllegalLocationConstraintException = _s3(
    "IllegalLocationConstraintException",
    400,
    "The specified location-constraint is not valid for this endpoint.",
)


class QuorumError(ServiceUnavailable):  # type: ignore[misc,valid-type]
    """Fewer drives answered than the operation's quorum needs."""

    default_message = "Not enough drives are online to complete this request safely."


# ------------------------------------------------------------------------ drives
class DriveError(TitanError):
    """A drive failed an operation.  ``offline`` says the drive itself is gone."""

    def __init__(self, drive_id: str, message: str, *, offline: bool = False) -> None:
        self.drive_id = drive_id
        self.offline = offline
        super().__init__(f"drive {drive_id}: {message}")


class DriveOffline(DriveError):
    def __init__(self, drive_id: str, message: str = "offline") -> None:
        super().__init__(drive_id, message, offline=True)


class DriveFull(DriveError):
    """The drive (its filesystem or its LMDB map) has no room; it still serves reads."""


class FragmentMissing(DriveError):
    """The drive has no fragment file (or inline blob) for that data id."""


class FragmentCorrupt(DriveError):
    """A block checksum did not match; the file has been moved to quarantine/."""


class ConfigError(TitanError):
    """Bad configuration: the message names the key and what is wrong."""
