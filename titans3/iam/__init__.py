"""Who may do what: the pure cores of access control (no I/O, no trio).

Theory of operation
-------------------
Everything here is values in, values out, so every rule AWS documents is a
unit test away:

* :mod:`~titans3.iam.policy` parses IAM policy documents (bucket policies and
  identity policies) into immutable statements, refusing what AWS refuses with
  AWS's ``MalformedPolicy`` messages;
* :mod:`~titans3.iam.conditions` holds the condition operators;
* :mod:`~titans3.iam.evaluate` decides one request against a set of policies
  (explicit Deny beats Allow beats the default deny);
* :mod:`~titans3.iam.actions` is the catalogue of S3 actions and what kind of
  resource each applies to;
* :mod:`~titans3.iam.acl` is the ACL model (grants, canned ACLs, ownership
  controls) and :mod:`~titans3.iam.publicaccess` Block Public Access with
  AWS's meaning of "public";
* :mod:`~titans3.iam.auditchain` is the hash-chained audit record format.

The stateful parts (users and keys on the cluster's system records, the audit
log's storage) live in :mod:`titans3.accounts`; the S3 front's authorization
hook in :mod:`titans3.s3.authorize`.
"""
