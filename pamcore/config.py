"""Instance configuration: an instance folder with ``pamcore.toml``, overridable by environment.

Precedence: explicit arguments > environment (``PAMCORE_*``) > ``pamcore.toml`` > defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pamcore.errors import ConfigurationError

CONFIG_FILE = "pamcore.toml"
DEFAULT_INSTANCE = Path("instance")
#: Listen addresses that name no host a browser could type.
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})  # noqa: S104 (recognised, not bound)
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A DNS name (browsers send IDNs punycoded), an IPv4 or an IPv6 literal.
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


@dataclass(frozen=True)
class Config:
    instance_path: Path
    #: SQLAlchemy URL; SQLite in the instance folder unless set.
    database_url: str
    #: Where the vault's master key file lives (0600); ``PAMCORE_MASTER_KEY`` overrides it.
    master_key_path: Path
    #: Host name users type to reach the proxies (shown in connection strings).
    public_host: str = "localhost"
    #: Listen address and per-protocol ports of the proxy listeners.
    proxy_bind: str = "127.0.0.1"
    proxy_ports: dict[str, int] = field(default_factory=dict)
    web_bind: str = "127.0.0.1"
    web_port: int = 8080
    #: PEM certificate and key: the dashboard serves HTTPS (and Secure cookies) when set.
    web_tls_cert: Path | None = None
    web_tls_key: Path | None = None
    #: A reverse proxy in front of the dashboard terminates TLS: people reach it only over
    #: HTTPS, though cheroot itself speaks HTTP.
    web_behind_tls_proxy: bool = False
    #: How many reverse proxies in front of the dashboard append to X-Forwarded-For: the
    #: client address (sign-in limits, audit) is then the one the nearest of them saw.
    #: 0: none, and the header is ignored, so a client cannot choose its own address.
    web_trusted_proxies: int = 0
    #: Origins (``scheme://host[:port]``) people open the dashboard under; pages from these
    #: may open the browser terminal. Empty: :attr:`allowed_origins` derives them.
    web_origins: tuple[str, ...] = ()
    #: A dashboard sign-in ends after this many minutes without a click, and this many hours
    #: after the password was typed, whatever the clicks.
    web_idle_minutes: float = 30.0
    web_session_hours: float = 12.0
    #: Seconds between scheduler ticks in ``pamcore run`` / ``pamcore worker``.
    scheduler_interval: float = 5.0
    #: Seconds a session's claim may go without its owner's heartbeat (refreshed every third
    #: of this while it runs the session's actions) before another process takes it over.
    claim_timeout: float = 30.0
    #: Seconds a proxy node may go without refreshing its connections' heartbeat (it does
    #: every second) before another node closes them as stopped answering.
    heartbeat_timeout: float = 30.0
    #: Whether the dashboard answers ``/metrics`` (``/healthz`` and ``/readyz`` always).
    web_metrics: bool = True
    #: ``pamcore worker`` and ``pamcore proxy`` serve ``/metrics``, ``/healthz`` and
    #: ``/readyz`` on this port (0: any free one, shown at start); ``None``: they do not.
    metrics_port: int | None = None
    metrics_bind: str = "127.0.0.1"
    #: Log lines as human text, or one JSON object per line (``json``).
    log_format: str = "text"
    plugins_dir: Path | None = None
    #: Per-plugin configuration tables: ``[plugins.NAME]`` in pamcore.toml.
    plugin_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_key_path: Path | None = None
    #: The audit chain's HMAC keyring (0600, like the master key); a relative path is in the
    #: instance folder.
    audit_key_path: Path = Path("audit.key")

    def __post_init__(self) -> None:
        if not self.audit_key_path.is_absolute():
            object.__setattr__(self, "audit_key_path", self.instance_path / self.audit_key_path)

    @property
    def recordings_path(self) -> Path:
        return self.instance_path / "recordings"

    @property
    def web_https(self) -> bool:
        """Whether browsers reach the dashboard over HTTPS only (cheroot's own TLS or a
        TLS-terminating proxy): its cookies are then Secure and it sends HSTS."""
        return bool(self.web_tls_cert and self.web_tls_key) or self.web_behind_tls_proxy

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The dashboard's origins, normalised: ``web_origins`` when set, else ``public_host``
        and ``web_bind`` (unless a wildcard) on ``web_port``, over https when TLS is set."""
        if self.web_origins:
            return frozenset(self.web_origins)
        scheme = "https" if self.web_tls_cert and self.web_tls_key else "http"
        hosts = {self.public_host} | ({self.web_bind} - _WILDCARDS)
        return frozenset(
            normalize_origin(f"{scheme}://{_bracketed(host)}:{self.web_port}") for host in hosts
        )

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **changes)


def load_config(instance_path: Path | str | None = None, **overrides: Any) -> Config:
    """Read the instance configuration; no file means defaults (``pamcore init`` writes one)."""
    instance = Path(
        instance_path or os.environ.get("PAMCORE_INSTANCE") or DEFAULT_INSTANCE
    ).absolute()
    data: dict[str, Any] = {}
    file = instance / CONFIG_FILE
    if file.exists():
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file}: not valid TOML ({exc})") from exc
    core = data.get("pamcore", {})
    database_url = (
        os.environ.get("PAMCORE_DATABASE_URL")
        or core.get("database_url")
        or f"sqlite:///{instance / 'pamcore.db'}"
    )
    plugins_dir = os.environ.get("PAMCORE_PLUGINS_DIR") or core.get("plugins_dir")
    try:
        config = Config(
            instance_path=instance,
            database_url=database_url,
            master_key_path=Path(core.get("master_key_path", instance / "master.key")),
            audit_key_path=Path(core.get("audit_key_path", "audit.key")),
            public_host=core.get("public_host", "localhost"),
            proxy_bind=core.get("proxy_bind", "127.0.0.1"),
            proxy_ports={k: int(v) for k, v in core.get("proxy_ports", {}).items()},
            web_bind=core.get("web_bind", "127.0.0.1"),
            web_port=int(core.get("web_port", 8080)),
            web_tls_cert=_path(instance, core.get("web_tls_cert")),
            web_tls_key=_path(instance, core.get("web_tls_key")),
            web_origins=_origins(core.get("web_origins", [])),
            web_behind_tls_proxy=_flag(
                "web_behind_tls_proxy", core.get("web_behind_tls_proxy", False)
            ),
            web_trusted_proxies=_count("web_trusted_proxies", core.get("web_trusted_proxies", 0)),
            web_idle_minutes=_positive("web_idle_minutes", core.get("web_idle_minutes", 30)),
            web_session_hours=_positive("web_session_hours", core.get("web_session_hours", 12)),
            scheduler_interval=float(core.get("scheduler_interval", 5.0)),
            claim_timeout=_positive("claim_timeout", core.get("claim_timeout", 30)),
            heartbeat_timeout=_positive("heartbeat_timeout", core.get("heartbeat_timeout", 30)),
            web_metrics=_flag("web_metrics", core.get("web_metrics", True)),
            metrics_port=_port("metrics_port", core.get("metrics_port")),
            metrics_bind=core.get("metrics_bind", "127.0.0.1"),
            log_format=_log_format(core.get("log_format", "text")),
            plugins_dir=Path(plugins_dir) if plugins_dir else None,
            plugin_settings=data.get("plugins", {}),
            secret_key_path=instance / "web-secret.key",
        )
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{file}: {exc}") from exc
    return config.with_overrides(**overrides) if overrides else config


def _positive(name: str, value: Any) -> float:
    """A duration setting: a number above zero (a zero timeout would sign everyone out)."""
    number = float(value)
    if number <= 0:
        raise ValueError(f"{name} must be more than 0 (got {value})")
    return number


def _flag(name: str, value: Any) -> bool:
    """A true/false setting: a TOML boolean, never a string that only looks like one."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false (got {value!r})")
    return value


def _count(name: str, value: Any) -> int:
    """A whole number of things, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more (got {value!r})")
    return value


def _port(name: str, value: Any) -> int | None:
    """A TCP port, or ``None`` when not set."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{name} must be a port number from 0 to 65535 (got {value!r})")
    return value


#: The log formats ``log_format`` and ``--log-format`` accept.
LOG_FORMATS = ("text", "json")


def _log_format(value: Any) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)} (got {value!r})")
    return str(value)


def _path(instance: Path, value: str | None) -> Path | None:
    """A configured file, relative to the instance folder unless absolute."""
    return instance / value if value else None


def normalize_origin(origin: str) -> str:
    """``scheme://host:port`` in lower case with the scheme's port made explicit, so that
    ``http://LOCALHOST`` and ``http://localhost:80`` compare equal; raises ValueError for
    anything that is not an http(s) origin (a path, a query, no host)."""
    parts = urlsplit(origin.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(host):
        raise ValueError(f"{origin!r} is not an origin like 'https://pam.example.com:8080'")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} has more than scheme, host and port")
    port = parts.port or _DEFAULT_PORTS[scheme]
    return f"{scheme}://{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    """An IPv6 literal in brackets, as URLs write it."""
    return f"[{host}]" if ":" in host else host


def _origins(value: Any) -> tuple[str, ...]:
    """``web_origins``: a list of origins, each normalised."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("web_origins must be a list of origins like 'https://pam.example.com'")
    return tuple(normalize_origin(v) for v in value)


def default_config_text(database_url: str | None) -> str:
    """The ``pamcore.toml`` ``pamcore init`` writes: every setting, commented where default."""
    db_line = (
        f'database_url = "{database_url}"'
        if database_url
        else ('# database_url = "postgresql+psycopg://pamcore@localhost/pamcore"')
    )
    return f"""# pamcore instance configuration. Environment variables PAMCORE_* override these.
[pamcore]
{db_line}
public_host = "localhost"
proxy_bind = "127.0.0.1"
web_bind = "127.0.0.1"
web_port = 8080
# web_tls_cert = "web.crt"   # PEM; with web_tls_key the dashboard serves HTTPS
# web_tls_key = "web.key"
# A reverse proxy (nginx, HAProxy...) terminates TLS in front of the dashboard: cookies are
# then Secure and the dashboard sends Strict-Transport-Security.
# web_behind_tls_proxy = true
# How many reverse proxies in front of the dashboard add X-Forwarded-For (0: none, the header
# is ignored); sign-in limits and the audit log then see the real client address.
# web_trusted_proxies = 1
# Addresses people open the dashboard under, when not public_host or web_bind on web_port
# (a reverse proxy, another name): pages from these may open the browser terminal.
# web_origins = ["https://pam.example.com", "http://127.0.0.1:8080"]
# A dashboard sign-in ends after this long without a click, and this long after the password.
web_idle_minutes = 30
web_session_hours = 12
scheduler_interval = 5.0
# A session's actions are taken over by another process once their owner's heartbeat is this
# many seconds old (the owner was killed or lost the database).
claim_timeout = 30
# Seconds after which a proxy node that stopped refreshing its connections' heartbeat has
# them closed by another node ("node ... stopped answering").
heartbeat_timeout = 30
# plugins_dir = "plugins.d"
# Log lines as text (default) or one JSON object per line; --log-format overrides it.
# log_format = "json"
# /metrics, /healthz and /readyz: the dashboard serves them on web_port (web_metrics = false
# turns /metrics off there); pamcore worker and pamcore proxy serve them on metrics_port.
# Scrape them over loopback or a firewalled network: they need no sign-in.
# web_metrics = true
# metrics_port = 9464
# metrics_bind = "127.0.0.1"

[pamcore.proxy_ports]
# ssh = 4422
# rdp = 4489
"""
