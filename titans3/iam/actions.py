"""The S3 actions a policy may name, and the kind of resource each applies to.

A bucket policy statement naming ``s3:GetObject`` only on ``arn:aws:s3:::b``
(no ``/``) grants nothing, and AWS refuses it ("Action does not apply to any
resource(s) in statement"); an action that S3 does not have is "Policy has
invalid action".  Both checks need this catalogue.  ``BUCKET`` actions apply
to ``arn:aws:s3:::bucket``, ``OBJECT`` actions to ``arn:aws:s3:::bucket/key``,
``ACCOUNT`` actions to no resource (``*``; identity policies only).

The names are AWS's (Service Authorization Reference, S3); matching of action
names is case-insensitive, so the catalogue is keyed by the lower-case name.
"""

from __future__ import annotations

from enum import Enum

from titans3.iam import wildcard

__all__ = ["ResourceKind", "S3_ACTIONS", "kind_of", "matching"]


class ResourceKind(Enum):
    BUCKET = "bucket"
    OBJECT = "object"
    ACCOUNT = "account"


_OBJECT = """
AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectTagging
DeleteObjectVersion DeleteObjectVersionTagging GetObject GetObjectAcl GetObjectAttributes
GetObjectLegalHold GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion
GetObjectVersionAcl GetObjectVersionAttributes GetObjectVersionForReplication
GetObjectVersionTagging GetObjectVersionTorrent InitiateReplication ListMultipartUploadParts
ObjectOwnerOverrideToBucketOwner PutObject PutObjectAcl PutObjectLegalHold PutObjectRetention
PutObjectTagging PutObjectVersionAcl PutObjectVersionTagging ReplicateDelete ReplicateObject
ReplicateTags RestoreObject RenameObject
"""
_BUCKET = """
CreateBucket DeleteBucket DeleteBucketPolicy DeleteBucketWebsite GetAccelerateConfiguration
GetAnalyticsConfiguration GetBucketAcl GetBucketCORS GetBucketLocation GetBucketLogging
GetBucketNotification GetBucketObjectLockConfiguration GetBucketOwnershipControls
GetBucketPolicy GetBucketPolicyStatus GetBucketPublicAccessBlock GetBucketRequestPayment
GetBucketTagging GetBucketVersioning GetBucketWebsite GetEncryptionConfiguration
GetIntelligentTieringConfiguration GetInventoryConfiguration GetLifecycleConfiguration
GetMetricsConfiguration GetReplicationConfiguration ListBucket ListBucketMultipartUploads
ListBucketVersions PutAccelerateConfiguration PutAnalyticsConfiguration PutBucketAcl
PutBucketCORS PutBucketLogging PutBucketNotification PutBucketObjectLockConfiguration
PutBucketOwnershipControls PutBucketPolicy PutBucketPublicAccessBlock PutBucketRequestPayment
PutBucketTagging PutBucketVersioning PutBucketWebsite PutEncryptionConfiguration
PutIntelligentTieringConfiguration PutInventoryConfiguration PutLifecycleConfiguration
PutMetricsConfiguration PutReplicationConfiguration GetBucketMetadataTableConfiguration
CreateBucketMetadataTableConfiguration DeleteBucketMetadataTableConfiguration
"""
_ACCOUNT = """
ListAllMyBuckets GetAccountPublicAccessBlock PutAccountPublicAccessBlock ListAccessPoints
ListJobs CreateJob ListStorageLensConfigurations
"""

S3_ACTIONS: dict[str, tuple[str, ResourceKind]] = {}
for _names, _kind in ((_OBJECT, ResourceKind.OBJECT), (_BUCKET, ResourceKind.BUCKET),
                      (_ACCOUNT, ResourceKind.ACCOUNT)):  # fmt: skip
    for _name in _names.split():
        S3_ACTIONS[f"s3:{_name}".lower()] = (f"s3:{_name}", _kind)


def kind_of(action: str) -> ResourceKind | None:
    """The resource kind of one S3 action (``s3:GetObject``), None if S3 has no such action."""
    hit = S3_ACTIONS.get(action.lower())
    return hit[1] if hit else None


def matching(pattern: str) -> list[tuple[str, ResourceKind]]:
    """Every S3 action an action pattern (``s3:Get*``, ``*``) names."""
    p = pattern.lower()
    if p == "*":
        return list(S3_ACTIONS.values())
    if not wildcard.has_wildcard(p):
        hit = S3_ACTIONS.get(p)
        return [hit] if hit else []
    return [v for k, v in S3_ACTIONS.items() if wildcard.match_ci(p, k)]
