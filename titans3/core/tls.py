"""TLS for the S3 and peer listeners and for peer clients, from configuration.

Theory of operation
-------------------
TLS is on when ``tls_cert`` and ``tls_key`` are configured (``titanctl cluster
init`` makes a cluster CA and one certificate per host, with the host's IPs as
subject alternative names).  Then:

* the **S3 listener** serves HTTPS with the host certificate; clients verify it
  against the cluster CA (or whatever CA issued it);
* the **peer listener** serves HTTPS *and requires a client certificate* issued
  by ``tls_ca`` (mutual TLS).  A host holding a certificate from another CA, or
  none, fails the handshake before a single HTTP byte is read -- in addition to,
  not instead of, the HMAC on every request (the secret still authenticates the
  request; TLS adds confidentiality and a second, independent credential);
* **peer clients** (:class:`titans3.drive.remote.PeerClient`) trust only
  ``tls_ca`` (not the system store: a public CA must not be able to vouch for
  a peer), check that the certificate names the address dialled (IP SAN), and
  present this host's certificate.

Without ``tls_cert`` nothing changes: plain HTTP, as before.  This module only
turns configuration into ``ssl.SSLContext`` values and hypercorn settings; it
opens no sockets.
"""

from __future__ import annotations

import ssl
from typing import Any

from titans3.core.config import Config, parse_hostport
from titans3.core.errors import ConfigError


def enabled(cfg: Config) -> bool:
    return bool(cfg.tls_cert)


def scheme(cfg: Config) -> str:
    """``https`` when TLS is configured, else ``http``."""
    return "https" if enabled(cfg) else "http"


def server_settings(cfg: Config, *, peer: bool) -> dict[str, Any]:
    """Attributes to set on a hypercorn ``Config`` for one listener (empty without TLS).

    The peer listener requires a client certificate from ``tls_ca``; the S3
    listener asks for none (S3 clients authenticate with SigV4).
    """
    if not enabled(cfg):
        return {}
    out: dict[str, Any] = {"certfile": cfg.tls_cert, "keyfile": cfg.tls_key}
    if peer:
        out["ca_certs"] = cfg.tls_ca
        out["verify_mode"] = ssl.CERT_REQUIRED
    return out


def client_context(cfg: Config) -> ssl.SSLContext | None:
    """The context peer clients use: trust ``tls_ca`` only, present our certificate."""
    if not enabled(cfg):
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls_ca)
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"tls_cert/tls_key/tls_ca: cannot load: {e}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def check(cfg: Config) -> None:
    """Fail start-up with a message naming the keys when the files do not load."""
    client_context(cfg)  # loads the CA, the certificate and the key


def peer_client_options(cfg: Config) -> dict[str, Any]:
    """Keyword arguments for every ``PeerClient`` this host makes.

    ``tls``: the cluster-CA context (None without TLS).  ``local_address``: the
    host part of ``peer_listen`` when it names one address, so our calls leave
    from the address peers know us by (on one machine with hosts on 127.0.0.x,
    the kernel would otherwise pick 127.0.0.1 for all of them).
    """
    host = parse_hostport(cfg.peer_listen, "peer_listen")[0]
    return {
        "tls": client_context(cfg),
        "local_address": None if host in ("0.0.0.0", "::", "") else host,
    }
