"""``titans3 mount``: a bucket (or a prefix of it) as a filesystem, over S3.

Theory of operation
-------------------
``titans3 mount [--endpoint URL] [--profile P | --access-key K --secret-key S]
BUCKET[/PREFIX] DIR [-f]`` resolves keys, region and endpoint like the AWS
CLI (:mod:`titans3.fuse.awsconfig`), checks that the bucket answers, mounts,
and -- without ``-f`` -- detaches into the background once the mount works,
so the command's exit status says whether the mount is there.  It serves
until ``fusermount3 -u DIR`` (or ``umount``); SIGTERM and SIGINT unmount
cleanly after committing open files.  Exit status: 0 unmounted cleanly, 1 the
mount failed, 2 bad usage or no credentials.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from titans3.fuse.meta import Defaults
from titans3.fuse.options import MountOptions

DEFAULT_STAGING = "/var/tmp/titans3-fuse"


def add_parser(sub: Any) -> None:
    m = sub.add_parser("mount", help="mount a bucket over S3 (FUSE)",
                       description="Mount BUCKET[/PREFIX] on DIR through any S3 endpoint.")
    m.add_argument("source", metavar="BUCKET[/PREFIX]")
    m.add_argument("mountpoint", metavar="DIR")
    m.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    m.add_argument("--endpoint", metavar="URL", help="S3 endpoint (AWS_ENDPOINT_URL, profile "
                   "endpoint_url; default http://127.0.0.1:9000)")
    m.add_argument("--profile", help="profile in ~/.aws/credentials / ~/.aws/config")
    m.add_argument("--access-key", help="access key id (or AWS_ACCESS_KEY_ID)")
    m.add_argument("--secret-key", help="secret key (or AWS_SECRET_ACCESS_KEY; argv is visible in ps)")
    m.add_argument("--region", help="signing region (default us-east-1)")
    m.add_argument("--no-verify-ssl", action="store_true", help="do not verify the TLS certificate")
    m.add_argument("--ca-bundle", metavar="FILE", help="PEM CA certificates to trust")
    m.add_argument("--uid", type=int, help="owner of objects without uid metadata (default: you)")
    m.add_argument("--gid", type=int, help="group of objects without gid metadata")
    m.add_argument("--attr-timeout", type=float, default=1.0, metavar="S",
                   help="seconds attributes are cached (default 1)")
    m.add_argument("--entry-timeout", type=float, default=1.0, metavar="S",
                   help="seconds names (and missing names) are cached (default 1)")
    m.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds one request may stall before it is retried (default 10)")
    m.add_argument("--retry-window", type=float, default=20.0, metavar="S",
                   help="seconds a failing endpoint is retried before EIO (default 20)")
    m.add_argument("--cache-dir", default=DEFAULT_STAGING, metavar="DIR",
                   help=f"write-back staging directory (default {DEFAULT_STAGING})")
    m.add_argument("--write-back-max", type=int, default=4 << 30, metavar="BYTES",
                   help="dirty bytes staged before files are committed early (default 4 GiB)")
    m.add_argument("--close-async-max", type=int, default=0, metavar="BYTES",
                   help="close() of a file up to this size returns before its commit is durable "
                        "(fsync still waits; default 0: close commits)")
    m.add_argument("--write-behind", action="store_true",
                   help="upload the finished parts of a file written from its start while it "
                        "is written (close() still returns when durable; docs/fuse.md)")
    m.add_argument("--allow-other", action="store_true", help="let other users use the mount")
    m.add_argument("-o", dest="options", action="append", default=[], metavar="OPT",
                   help="extra FUSE mount option (repeatable)")
    m.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def options_from(args: argparse.Namespace) -> MountOptions:
    uid = os.getuid() if args.uid is None else args.uid
    gid = os.getgid() if args.gid is None else args.gid
    return MountOptions(attr_timeout=args.attr_timeout, entry_timeout=args.entry_timeout,
                        op_timeout=max(args.timeout, args.retry_window) + args.timeout,
                        defaults=Defaults(uid=uid, gid=gid), staging_dir=args.cache_dir,
                        write_back_max=args.write_back_max, close_async_max=args.close_async_max,
                        write_behind=args.write_behind)


def run(args: argparse.Namespace) -> int:
    from titans3.fuse.awsconfig import NoCredentials, resolve
    from titans3.fuse.paths import Namespace

    try:
        ns = Namespace.parse(args.source)
        creds = resolve(access_key=args.access_key, secret_key=args.secret_key,
                        profile=args.profile, region=args.region, endpoint=args.endpoint)
    except (ValueError, NoCredentials) as e:
        print(f"titans3 mount: {e}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.mountpoint):
        print(f"titans3 mount: {args.mountpoint} is not a directory", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ready_w = None
    if not args.foreground:
        r, ready_w = os.pipe()
        if os.fork():  # the parent reports what the child's mount did
            os.close(ready_w)
            answer = os.read(r, 4096).decode(errors="replace")
            if answer == "ok":
                return 0
            print(f"titans3 mount: {answer or 'the mount process died'}", file=sys.stderr)
            return 1
        os.close(r)
        os.setsid()
    return _serve(args, ns, creds, ready_w)


def _serve(args: argparse.Namespace, ns: Any, creds: Any, ready_w: int | None) -> int:
    import trio

    from titans3.fuse.mount import Mount, MountError
    from titans3.fuse.s3_backend import S3Backend

    def report(text: str) -> None:
        nonlocal ready_w
        if ready_w is not None:
            os.write(ready_w, text.encode())
            os.close(ready_w)
            ready_w = None
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(devnull, fd)

    verify: bool | str = False if args.no_verify_ssl else (args.ca_bundle or True)

    async def main() -> int:
        backend = S3Backend(creds.endpoint, ns.bucket, access_key=creds.access_key,
                            secret_key=creds.secret_key, session_token=creds.session_token,
                            region=creds.region, timeout=args.timeout,
                            retry_window=args.retry_window, verify=verify)
        mount = Mount(backend, ns, args.mountpoint, options_from(args),
                      allow_other=args.allow_other, extra_options=tuple(args.options))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(mount.run)
                report("ok")
                nursery.start_soon(_signals, mount)
                while mount.state in ("mounting", "mounted"):
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
        except (MountError, BaseExceptionGroup) as e:
            found = _mount_error(e)
            if found is None:
                raise
            if ready_w is None:
                print(f"titans3 mount: {found}", file=sys.stderr)
            report(str(found))
            return 1
        finally:
            await backend.aclose()
        return 0

    try:
        return trio.run(main)
    except KeyboardInterrupt:
        return 0


def _mount_error(e: BaseException) -> BaseException | None:
    """The MountError in ``e`` (trio wraps what leaves a nursery in a group)."""
    from titans3.fuse.mount import MountError

    if isinstance(e, MountError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            if (found := _mount_error(sub)) is not None:
                return found
    return None


async def _signals(mount: Any) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for _ in signals:
            logging.getLogger("titans3.fuse").info("signal: unmounting %s", mount.mountpoint)
            mount.unmount()
            return
