"""``titans3`` command: ``titans3 serve [flags]`` runs the host daemon.

Flags map one-to-one onto :class:`titans3.core.config.Config` fields; a flag
left out falls back to ``TITANS3_*`` environment variables, then the TOML
file, then the embedded defaults.  Bad configuration exits 2 with one line that
names the key -- never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from titans3 import __version__
from titans3.core.config import Config, load
from titans3.core.errors import ConfigError


class _JoinAction(argparse.Action):
    """A repeatable option kept as one comma-separated string (Config fields are scalars)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        cur = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{cur},{values}" if cur else str(values))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="titans3", description="TitanS3 storage-node daemon")
    p.add_argument("--version", action="version", version=f"titans3 {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the host daemon (S3, peer API, status page)")
    s.add_argument("--config", metavar="FILE", help="TOML configuration file")
    s.add_argument("--data", metavar="DIR", help="directory holding directory-backed drives (default ./data)")
    s.add_argument("--drives", type=int, metavar="N", help="number of directory-backed drives DIR/drive-0.. (default 6)")
    s.add_argument("--listen", metavar="HOST:PORT", help="S3 endpoint (default 0.0.0.0:9000)")
    s.add_argument("--peer-listen", metavar="HOST:PORT", help="peer API (default :9100)")
    s.add_argument("--web-listen", metavar="HOST:PORT", help="status page and /metrics (default 127.0.0.1:9001)")
    s.add_argument("--state-dir", metavar="DIR", help="host state: master key, credentials (default DIR/.titans3)")
    s.add_argument("--region", help="S3 region name (default us-east-1)")
    s.add_argument("--domain", help="S3 domain for virtual-hosted-style requests")
    s.add_argument("--ec", metavar="K+M", help="erasure scheme (default by drive count: 6 -> 4+2)")
    s.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    s.add_argument("--peers", metavar="HOST:PORT,...",
                   help="form a cluster: every host's peer API address, this host's included")
    s.add_argument("--cluster-secret", metavar="S",
                   help="shared secret authenticating peers (same on every host; or TITANS3_CLUSTER_SECRET)")
    s.add_argument("--cluster-wait", type=float, metavar="SECONDS",
                   help="how long start-up waits for every peer to answer (default 120)")
    s.add_argument("--tls-cert", metavar="FILE",
                   help="PEM certificate of this host: S3 and peer API speak HTTPS (titanctl cluster init)")
    s.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    s.add_argument("--tls-ca", metavar="FILE",
                   help="PEM cluster CA: peers must present a certificate it issued")
    s.add_argument("--disks", metavar="auto|DEV,DEV",
                   help="use raw disks instead of --data directories: 'auto' claims every blank disk "
                        "(or TitanS3 drive) found, or name the devices")
    s.add_argument("--disk-allow", metavar="GLOB", action=_JoinAction,
                   help="only disks whose device path, /dev/disk/by-* link or loop backing file "
                        "matches GLOB (repeatable; comma-separated)")
    s.add_argument("--nbd-listen", metavar="HOST:PORT",
                   help="NBD gateway (default 127.0.0.1:10809; '' turns it off; another address needs TLS)")
    s.add_argument("--nbd-socket", metavar="PATH",
                   help="NBD unix socket (default STATE_DIR/nbd.sock; '' turns it off)")
    s.add_argument("--mount", metavar="BUCKET[/PREFIX]:DIR", action=_JoinAction, dest="mounts",
                   help="serve a FUSE mount of the bucket on DIR from this daemon (titans3/fuse/)")
    from titans3.cli import mount as mount_cli

    mount_cli.add_parser(sub)
    s.add_argument("--no-sigv2", dest="sigv2", action="store_const", const=False, default=None,
                   help="refuse Signature Version 2 requests (config sigv2 = false)")
    s.add_argument("--audit-journal", metavar="auto|off|PATH",
                   help="ship audit records to journald's socket (default auto: if it exists)")
    s.add_argument("--s3-processes", metavar="auto|N",
                   help="S3 processes on this host (default auto: min(cores, 4); 1: one process)")
    c = sub.add_parser("credentials", help="print the root credentials (created on first use)")
    c.add_argument("--config", metavar="FILE", help="TOML configuration file")
    c.add_argument("--data", metavar="DIR", help="data directory (default ./data)")
    c.add_argument("--state-dir", metavar="DIR", help="host state directory (default DIR/.titans3)")
    sc = sub.add_parser("setup-code", help="print the pending one-time setup code (appliance first boot)")
    sc.add_argument("--config", metavar="FILE", help="TOML configuration file")
    sc.add_argument("--setup-code-file", metavar="FILE", help="where the code is kept (setup_code_file)")
    sc.add_argument("--create", action="store_true", help="make one if none is pending (first boot)")
    return p


def show_setup_code(cfg: Config, create: bool) -> int:
    """Print the pending code; with ``create``, make one first if none is pending."""
    from titans3.core import setupcode

    pending = setupcode.SetupCode(cfg.setup_code_file)
    code = pending.code()
    if code is None and create:
        code = setupcode.new_code()
        setupcode.write(cfg.setup_code_file, code)
    if code is None:
        print(f"titans3: no setup pending ({cfg.setup_code_file} does not exist)", file=sys.stderr)
        return 1
    print(code)
    return 0


def show_credentials(cfg: Config) -> int:
    from titans3.core.credentials import load_root_credentials
    from titans3.core.shell_exports import export_lines

    creds = load_root_credentials(cfg.state_path, cfg.root_access_key, cfg.root_secret_key)
    where = "from TITANS3_ROOT_*" if cfg.root_access_key else f"sealed in {cfg.state_path}"
    print(f"TitanS3 root credentials ({where}); paste these lines into your shell:")
    for line in export_lines(creds, cfg):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "mount":
        from titans3.cli import mount as mount_cli

        return mount_cli.run(args)
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "create")}
    try:
        cfg = load(flags=flags, config_file=args.config)
    except ConfigError as e:
        print(f"titans3: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "credentials":
            return show_credentials(cfg)
        if args.command == "setup-code":
            return show_setup_code(cfg, args.create)
        from titans3.daemon import main as run_daemon

        return run_daemon(cfg)
    except ConfigError as e:
        print(f"titans3: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
