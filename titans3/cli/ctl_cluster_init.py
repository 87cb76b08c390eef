"""``titanctl cluster init``: a cluster CA and one TLS certificate per host.

Theory of operation
-------------------
``titanctl cluster init --out DIR --hosts NAME=IP[;IP...],NAME=IP,...`` writes::

    DIR/ca.pem  DIR/ca-key.pem            the cluster CA (key 0600)
    DIR/NAME.pem  DIR/NAME-key.pem        per host: certificate and key (key 0600)

and each host is started with ``--tls-cert DIR/NAME.pem --tls-key
DIR/NAME-key.pem --tls-ca DIR/ca.pem`` (see ``titans3/core/tls.py``).

* A host certificate names the host (DNS SAN ``NAME``) and every IP given for
  it (IP SANs): peers dial each other by the IPs in ``--peers`` and check them.
  It is valid for both server and client authentication because the peer API
  is mutual TLS.
* If ``DIR`` already holds a CA, it is reused: running the command again with a
  new host (a later ``cluster join``) gives it a certificate the running hosts
  already trust.  An existing host certificate is never overwritten.
* Keys are ECDSA P-256: small, and fast to handshake on every new connection.

The certificate-building functions are pure (values in, PEM bytes out); only
:func:`init` touches files.  No network access, no admin API, no credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
HOST_DAYS = 825  # what browsers and most TLS stacks accept as a maximum leaf lifetime
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InitError(Exception):
    """A usage error to report as one line."""


@dataclass(frozen=True, slots=True)
class HostSpec:
    name: str
    ips: tuple[IPAddress, ...]


# ------------------------------------------------------------------ pure parts
def parse_hosts(text: str) -> list[HostSpec]:
    """``"h1=10.0.0.1,h2=10.0.0.2;fd00::2"`` -> host specs (``;`` separates a host's IPs)."""
    out: list[HostSpec] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, ips = item.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.match(name):
            raise InitError(f"--hosts: expected NAME=IP, got {item!r}")
        try:
            addrs = tuple(ipaddress.ip_address(ip.strip()) for ip in ips.split(";") if ip.strip())
        except ValueError as e:
            raise InitError(f"--hosts: {name}: {e}") from None
        if not addrs:
            raise InitError(f"--hosts: {name} has no IP address")
        out.append(HostSpec(name, addrs))
    if not out:
        raise InitError("--hosts: no hosts given")
    names = [h.name for h in out]
    if len(set(names)) != len(names):
        raise InitError("--hosts: a host name appears twice")
    return out


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TitanS3"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(common_name: str, now: dt.datetime) -> tuple[bytes, bytes]:
    """A self-signed CA that may sign host certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(pub).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_host(ca_cert_pem: bytes, ca_key_pem: bytes, host: HostSpec, now: dt.datetime) -> tuple[bytes, bytes]:
    """A certificate for ``host`` signed by the CA: SANs = its name and IPs; server+client auth."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InitError("ca-key.pem: expected an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(host.name)]
    sans += [x509.IPAddress(ip) for ip in host.ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host.name)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=HOST_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


# ------------------------------------------------------------------ files
def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init(out: Path, hosts: Sequence[HostSpec], *, now: dt.datetime | None = None) -> list[str]:
    """Create (or reuse) the CA in ``out`` and a certificate per host; lines to print."""
    now = now or dt.datetime.now(dt.UTC)
    out.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key = out / "ca.pem", out / "ca-key.pem"
    lines: list[str] = []
    existing = [h.name for h in hosts if (out / f"{h.name}.pem").exists()
                or (out / f"{h.name}-key.pem").exists()]
    if existing:
        raise InitError(f"{out}: certificates exist for {', '.join(existing)}; not overwriting")
    if ca_pem.exists() != ca_key.exists():
        raise InitError(f"{out}: ca.pem and ca-key.pem must both exist or neither")
    if ca_pem.exists():
        lines.append(f"reusing the cluster CA in {ca_pem}")
    else:
        cert, key = make_ca("TitanS3 cluster CA", now)
        _write(ca_key, key, 0o600)
        _write(ca_pem, cert, 0o644)
        lines.append(f"created the cluster CA {ca_pem} (keep {ca_key} offline once hosts have certificates)")
    ca_cert_bytes, ca_key_bytes = ca_pem.read_bytes(), ca_key.read_bytes()
    for h in hosts:
        cert, key = issue_host(ca_cert_bytes, ca_key_bytes, h, now)
        _write(out / f"{h.name}-key.pem", key, 0o600)
        _write(out / f"{h.name}.pem", cert, 0o644)
        ips = ", ".join(str(ip) for ip in h.ips)
        lines.append(f"{h.name} ({ips}): --tls-cert {out / (h.name + '.pem')} "
                     f"--tls-key {out / (h.name + '-key.pem')} --tls-ca {ca_pem}")
    return lines


# ------------------------------------------------------------------ command line
def add_init(actions: Any, add_common: Callable[..., None] | None = None) -> None:
    """Register ``init`` under the ``cluster`` sub-parsers ``actions``."""
    p = actions.add_parser("init", help="generate a cluster CA and per-host TLS certificates")
    if add_common is not None:
        add_common(p, top=False)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the CA and certificates")
    p.add_argument("--hosts", required=True, metavar="NAME=IP,...",
                   help="hosts and their IPs (several IPs of one host separated by ';')")


def run_init(args: argparse.Namespace) -> str:
    """``titanctl cluster init``; raises :class:`InitError` on bad input."""
    try:
        return "\n".join(init(Path(args.out), parse_hosts(args.hosts)))
    except OSError as e:
        raise InitError(f"{args.out}: {e.strerror or e}") from None
