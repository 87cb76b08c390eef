"""The directory: users, keys, policies; sealing; two hosts sharing one table."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import trio

from titans3.accounts.directory import Directory, IamError, seal_key_for
from titans3.accounts.register import SystemTable
from titans3.objects.versionid import HybridClock

from ..objects.memdrive import MemDrive

KEY = seal_key_for(cluster_secret="cluster-test-secret-0123456789", master_key=b"")


def clock_of() -> Callable[[], HybridClock]:
    clock = HybridClock()  # one host's clock, read by the table on every call
    return lambda: clock


def host(drives: list[MemDrive], seal_key: bytes = KEY) -> Directory:
    return Directory(SystemTable(lambda: drives, clock_of(), "iam"), seal_key=seal_key,
                     root_access_key="ROOTKEY", root_secret_key="rootsecret")  # fmt: skip


async def test_the_account_is_created_once_and_shared():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    a, b = host(drives), host(drives)
    await a.open()
    await b.open()
    assert a.account.id == b.account.id and len(a.account.id) == 12 and a.account.id.isdigit()
    assert a.account.canonical_id == b.account.canonical_id
    root = a.principal("ROOTKEY")
    assert root is not None and root.root and root.identity.arn == f"arn:aws:iam::{a.account.id}:root"


async def test_users_and_keys():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    d = host(drives)
    await d.open()
    alice = await d.create_user("alice", email="alice@example.com")
    assert alice.user_id.startswith("AIDA") and len(alice.canonical_id) == 64
    with pytest.raises(IamError) as caught:
        await d.create_user("Alice")  # names are unique regardless of case
    assert caught.value.code == "EntityAlreadyExists"
    _, k1, s1 = await d.create_key("alice")
    _, k2, _ = await d.create_key("alice")
    with pytest.raises(IamError) as caught:
        await d.create_key("alice")
    assert caught.value.code == "LimitExceeded"
    assert d.get_secret(k1.id) == s1 and k1.id.startswith("AKIA") and len(k1.id) == 20
    p = d.principal(k1.id)
    assert p is not None and p.identity.name == "alice" and p.identity.canonical_id == alice.canonical_id
    await d.set_key_status(k1.id, "Inactive")
    assert d.get_secret(k1.id) is None and d.principal(k1.id) is None
    await d.set_key_status(k1.id, "Active")
    await d.set_user_disabled("alice", True)
    assert d.get_secret(k1.id) is None and d.get_secret(k2.id) is None
    await d.set_user_disabled("alice", False)
    assert d.canonical_for_email("ALICE@example.com") == alice.canonical_id
    assert d.display_name(alice.canonical_id) == "alice"
    with pytest.raises(IamError) as caught:
        await d.delete_user("alice")
    assert caught.value.code == "DeleteConflict"
    await d.delete_key(k1.id)
    await d.delete_key(k2.id)
    await d.delete_user("alice")
    assert d.get_secret(k2.id) is None and d.users() == []


async def test_secrets_are_sealed_and_bound_to_their_key():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    d = host(drives)
    await d.open()
    await d.create_user("bob")
    _, key, secret = await d.create_key("bob")
    raw = b"".join(drives[0].tables["iam"].values())
    assert secret.encode() not in raw
    other = host(drives, seal_key=seal_key_for(cluster_secret="another-cluster-secret-xyz", master_key=b""))
    await other.open()  # the wrong cluster key: the key does not open, nothing crashes
    assert other.get_secret(key.id) is None


async def test_identity_policies_are_validated_and_limited():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    d = host(drives)
    await d.open()
    await d.create_user("carol")
    _, key, _ = await d.create_key("carol")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/public/*"}]})
    await d.put_user_policy("carol", "read-public", doc)
    p = d.principal(key.id)
    assert p is not None and len(p.policies) == 1
    with pytest.raises(IamError) as caught:
        await d.put_user_policy("carol", "bad", '{"Statement": [{"Effect": "Allow"}]}')
    assert caught.value.code == "MalformedPolicyDocument"
    with pytest.raises(IamError) as caught:
        await d.put_user_policy("carol", "huge", doc.replace("public", "p" * 2100))
    assert caught.value.code == "LimitExceeded"
    await d.delete_user_policy("carol", "read-public")
    p = d.principal(key.id)
    assert p is not None and p.policies == ()


async def test_a_change_on_one_host_reaches_another_by_generation():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    a, b = host(drives), host(drives)
    await a.open()
    await b.open()
    await a.create_user("dave")
    _, key, secret = await a.create_key("dave")
    assert b.get_secret(key.id) is None  # b has not reloaded yet
    assert a.generation > b.generation
    b.observe(a.generation)
    await b.reload()
    assert b.get_secret(key.id) == secret and b.generation == a.generation
    await a.set_key_status(key.id, "Inactive")
    await b.reload()
    assert b.get_secret(key.id) is None


async def test_a_joining_host_does_not_replace_the_account():
    cluster = [MemDrive(f"c{i}") for i in range(3)]
    lone = [MemDrive("l0")]
    a = host(cluster)
    await a.open()
    await trio.sleep(0.01)  # version ids order by milliseconds first
    b = host(lone)  # a lone host with its own account, created later
    await b.open()
    assert b.account.id != a.account.id
    joined = cluster + lone
    merged = host(joined)
    await merged.open()
    assert merged.account.id == a.account.id  # the older account stays
    for d in joined:  # and every drive now says so
        assert d.tables["iam"][b"account"] == cluster[0].tables["iam"][b"account"]
