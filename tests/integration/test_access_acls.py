"""ACLs, Object Ownership and Block Public Access as a table of cases: who asks,
what, and the answer AWS gives.  Alice uses boto3, Bob the AWS CLI, the anonymous
client curl; each row runs in order against one daemon and the table of
outcomes is printed when any row differs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .access import cli_code, code_of, curl, make_user, titanctl
from .cluster import AwsCli, Daemon, s3_client

CREATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:CreateBucket", "s3:ListAllMyBuckets"], "Resource": "*"}]}


@pytest.fixture(scope="module")
def people(module_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    d = module_daemon
    a_creds, a_user = make_user(d.endpoint, "alice", policy=CREATE, email="alice@example.com")
    b_creds, b_user = make_user(d.endpoint, "bob", policy=CREATE, email="bob@example.com")
    alice = s3_client(d, a_creds)
    bob = AwsCli(d.endpoint, b_creds, tmp_path_factory.mktemp("bob"))
    yield d, alice, a_user, bob, b_user
    alice.close()


def test_acls_ownership_and_public_access_block(people, tmp_path: Path) -> None:  # noqa: ANN001
    d, alice, a_user, bob, b_user = people
    root = s3_client(d)
    f = tmp_path / "f.txt"
    f.write_text("from bob")

    def b(*args: str) -> Callable[[], str]:
        return lambda: cli_code(bob(*args, check=False))

    def a(fn: Callable[[], object]) -> Callable[[], str]:
        return lambda: code_of(fn)

    def anon(path: str) -> Callable[[], str]:
        return lambda: str(curl(f"{d.endpoint}{path}")[0])

    bob_id = b_user["canonical_id"]
    rows: list[tuple[str, str, Callable[[], str], str]] = [
        # --- BucketOwnerEnforced (the default for new buckets): ACLs are off
        ("alice", "CreateBucket enforced + x-amz-acl public-read",
         a(lambda: alice.create_bucket(Bucket="enforced", ACL="public-read")), "InvalidBucketAclWithObjectOwnership"),
        ("alice", "CreateBucket enforced", a(lambda: alice.create_bucket(Bucket="enforced")), "ok"),
        ("bob", "CreateBucket enforced (alice's)", b("s3api", "create-bucket", "--bucket", "enforced"),
         "BucketAlreadyExists"),
        ("alice", "GetBucketOwnershipControls",
         lambda: alice.get_bucket_ownership_controls(Bucket="enforced")["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
         "BucketOwnerEnforced"),
        ("alice", "GetPublicAccessBlock (defaults)",
         lambda: str(sorted(alice.get_public_access_block(Bucket="enforced")["PublicAccessBlockConfiguration"].values())),
         "[True, True, True, True]"),
        ("alice", "PutObject x-amz-acl public-read",
         a(lambda: alice.put_object(Bucket="enforced", Key="k", Body=b"x", ACL="public-read")),
         "AccessControlListNotSupported"),
        ("alice", "PutObject x-amz-acl bucket-owner-full-control",
         a(lambda: alice.put_object(Bucket="enforced", Key="k", Body=b"x", ACL="bucket-owner-full-control")), "ok"),
        ("alice", "PutBucketAcl public-read", a(lambda: alice.put_bucket_acl(Bucket="enforced", ACL="public-read")),
         "AccessControlListNotSupported"),
        ("alice", "PutBucketAcl private", a(lambda: alice.put_bucket_acl(Bucket="enforced", ACL="private")), "ok"),
        ("bob", "GetObject in alice's bucket", b("s3api", "get-object", "--bucket", "enforced", "--key", "k",
                                                 str(tmp_path / "o")), "AccessDenied"),
        ("bob", "ListObjects in alice's bucket", b("s3api", "list-objects-v2", "--bucket", "enforced"),
         "AccessDenied"),
        ("anonymous", "GET enforced/k", anon("/enforced/k"), "403"),
        # --- ObjectWriter: ACLs on, objects belong to their writer
        ("alice", "CreateBucket writer (ObjectWriter)",
         a(lambda: alice.create_bucket(Bucket="writer", ObjectOwnership="ObjectWriter")), "ok"),
        ("alice", "DeletePublicAccessBlock writer", a(lambda: alice.delete_public_access_block(Bucket="writer")), "ok"),
        ("alice", "PutBucketAcl grant READ+WRITE to bob (canonical id)",
         a(lambda: alice.put_bucket_acl(Bucket="writer", GrantRead=f"id={bob_id}", GrantWrite=f"id={bob_id}",
                                        GrantFullControl=f"id={a_user['canonical_id']}")), "ok"),
        ("bob", "PutObject writer/bobs.txt", b("s3", "cp", str(f), "s3://writer/bobs.txt"), "ok"),
        ("bob", "ListObjects writer (bucket READ)", b("s3api", "list-objects-v2", "--bucket", "writer"), "ok"),
        ("alice", "GetObjectAcl bob's object (bucket owner, no grant)",
         a(lambda: alice.get_object_acl(Bucket="writer", Key="bobs.txt")), "AccessDenied"),
        ("alice", "GetObject bob's object (bucket owner, no grant)",
         a(lambda: alice.get_object(Bucket="writer", Key="bobs.txt")), "AccessDenied"),
        ("bob", "PutObjectAcl grant READ to alice by e-mail",
         b("s3api", "put-object-acl", "--bucket", "writer", "--key", "bobs.txt",
           "--grant-read", "emailaddress=alice@example.com", "--grant-full-control", f"id={bob_id}"), "ok"),
        ("alice", "GetObject bob's object after the grant",
         lambda: alice.get_object(Bucket="writer", Key="bobs.txt")["Body"].read().decode(), "from bob"),
        ("alice", "GetObjectAcl with READ only (READ_ACP not granted)",
         a(lambda: alice.get_object_acl(Bucket="writer", Key="bobs.txt")), "AccessDenied"),
        ("bob", "GetObjectAcl: owner and grants of his object",
         lambda: "{Owner[DisplayName]} {n}".format(n=len(json.loads(bob("s3api", "get-object-acl", "--bucket", "writer",
                                                   "--key", "bobs.txt").stdout)["Grants"]), **json.loads(
             bob("s3api", "get-object-acl", "--bucket", "writer", "--key", "bobs.txt").stdout)), "bob 2"),
        ("bob", "PutObject x-amz-acl public-read", b("s3", "cp", str(f), "s3://writer/public.txt", "--acl", "public-read"),
         "ok"),
        ("anonymous", "GET writer/public.txt (AllUsers READ)", anon("/writer/public.txt"), "200"),
        ("anonymous", "GET writer/bobs.txt (private)", anon("/writer/bobs.txt"), "403"),
        ("alice", "PutObject x-amz-grant-read AuthenticatedUsers",
         a(lambda: alice.put_object(Bucket="writer", Key="members.txt", Body=b"members",
                                    GrantRead='uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"')), "ok"),
        ("bob", "GetObject AuthenticatedUsers object", b("s3api", "get-object", "--bucket", "writer", "--key",
                                                         "members.txt", str(tmp_path / "m")), "ok"),
        ("anonymous", "GET AuthenticatedUsers object", anon("/writer/members.txt"), "403"),
        ("alice", "DeleteObject bob's object (bucket WRITE)",
         a(lambda: alice.delete_object(Bucket="writer", Key="bobs.txt")), "ok"),
        # --- Block Public Access, bucket and account level
        ("alice", "PutPublicAccessBlock IgnorePublicAcls",
         a(lambda: alice.put_public_access_block(Bucket="writer", PublicAccessBlockConfiguration={
             "IgnorePublicAcls": True})), "ok"),
        ("anonymous", "GET public object, IgnorePublicAcls", anon("/writer/public.txt"), "403"),
        ("alice", "PutPublicAccessBlock BlockPublicAcls",
         a(lambda: alice.put_public_access_block(Bucket="writer", PublicAccessBlockConfiguration={
             "BlockPublicAcls": True})), "ok"),
        ("anonymous", "GET public object, only BlockPublicAcls", anon("/writer/public.txt"), "200"),
        ("bob", "PutObject x-amz-acl public-read, BlockPublicAcls",
         b("s3", "cp", str(f), "s3://writer/p2.txt", "--acl", "public-read"), "AccessDenied"),
        ("alice", "PutBucketAcl public-read, BlockPublicAcls",
         a(lambda: alice.put_bucket_acl(Bucket="writer", ACL="public-read")), "AccessDenied"),
        ("alice", "DeletePublicAccessBlock writer", a(lambda: alice.delete_public_access_block(Bucket="writer")), "ok"),
        ("root", "account-level IgnorePublicAcls (titanctl)",
         lambda: str(titanctl(d.endpoint, "account", "public-access-block", "--ignore-public-acls").returncode), "0"),
        ("anonymous", "GET public object, account IgnorePublicAcls", anon("/writer/public.txt"), "403"),
        ("root", "account-level block removed",
         lambda: str(titanctl(d.endpoint, "account", "public-access-block", "--delete").returncode), "0"),
        ("anonymous", "GET public object, no block", anon("/writer/public.txt"), "200"),
        # --- BucketOwnerPreferred: bucket-owner-full-control hands the object to the bucket owner
        ("alice", "PutBucketOwnershipControls BucketOwnerPreferred",
         a(lambda: alice.put_bucket_ownership_controls(Bucket="writer", OwnershipControls={
             "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})), "ok"),
        ("bob", "PutObject bucket-owner-full-control",
         b("s3", "cp", str(f), "s3://writer/handed.txt", "--acl", "bucket-owner-full-control"), "ok"),
        ("alice", "owner of handed.txt", lambda: alice.get_object_acl(Bucket="writer", Key="handed.txt")["Owner"][
            "DisplayName"], "alice"),
        ("bob", "PutObject without the canned ACL", b("s3", "cp", str(f), "s3://writer/kept.txt"), "ok"),
        ("alice", "GetObject kept.txt (still bob's)", a(lambda: alice.get_object(Bucket="writer", Key="kept.txt")),
         "AccessDenied"),
        ("alice", "BucketOwnerEnforced while the bucket ACL grants bob",
         a(lambda: alice.put_bucket_ownership_controls(Bucket="writer", OwnershipControls={
             "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})), "InvalidBucketAclWithObjectOwnership"),
        ("alice", "PutBucketAcl private, then BucketOwnerEnforced",
         a(lambda: (alice.put_bucket_acl(Bucket="writer", ACL="private"),
                    alice.put_bucket_ownership_controls(Bucket="writer", OwnershipControls={
                        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}))), "ok"),
        ("alice", "GetObject kept.txt (enforced: the bucket owner owns all)",
         lambda: alice.get_object(Bucket="writer", Key="kept.txt")["Body"].read().decode(), "from bob"),
        ("bob", "ListObjects writer after private ACL", b("s3api", "list-objects-v2", "--bucket", "writer"),
         "AccessDenied"),
        # --- ListBuckets shows each requester their own buckets
        ("bob", "CreateBucket bobs", b("s3api", "create-bucket", "--bucket", "bobs"), "ok"),
        ("bob", "ListBuckets (own only)",
         lambda: ",".join(x["Name"] for x in json.loads(bob("s3api", "list-buckets").stdout)["Buckets"]), "bobs"),
        ("alice", "ListBuckets (own only)",
         lambda: ",".join(x["Name"] for x in alice.list_buckets()["Buckets"]), "enforced,writer"),
        ("alice", "ListBuckets Owner", lambda: alice.list_buckets()["Owner"]["ID"], a_user["canonical_id"]),
        ("root", "ListBuckets (every bucket)", lambda: ",".join(x["Name"] for x in root.list_buckets()["Buckets"]),
         "bobs,enforced,writer"),
    ]  # fmt: skip
    results = []
    for who, what, fn, want in rows:
        try:
            got = fn()
        except Exception as e:  # noqa: BLE001 -- a row that raises is a row that failed
            got = f"{type(e).__name__}: {e}"[:120]
        results.append((who, what, want, str(got)))
    bad = [r for r in results if r[2] != r[3]]
    table = "\n".join(f"{'FAIL' if r[2] != r[3] else 'ok  '} {r[0]:9} {r[1]:60} want {r[2]!r:40} got {r[3]!r}"
                      for r in results)  # fmt: skip
    assert not bad, "\n" + table
    root.close()
