"""The core object: configuration, storage, plugin host, vault and clock of one instance.

Every entry point (CLI, web, proxies, scheduler) builds one :class:`Pamcore` and passes it
to the services; nothing else holds global state.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pamcore import audit
from pamcore.clock import Clock, utcnow
from pamcore.config import Config, load_config
from pamcore.errors import ConfigurationError, PamError
from pamcore.model import AuditEvent
from pamcore.plugins import Hooks, PluginHost, build_plugin_host
from pamcore.revisions import require_current
from pamcore.services.common import worker_name
from pamcore.session_changes import SessionChanges
from pamcore.storage import create_db_engine, make_session_factory, unit_of_work
from pamcore.vault import KeyringFile, Vault


class Pamcore:
    def __init__(
        self,
        config: Config,
        *,
        plugins: PluginHost | None = None,
        clock: Clock = utcnow,
        engine: Engine | None = None,
        node: str | None = None,
    ) -> None:
        """``node``: this process's name by default (:func:`worker_name`); a test running
        two cores to stand for two processes names the second."""
        self.config = config
        self.clock = clock
        self._plugins = plugins
        self._plugins_lock = threading.Lock()
        self.engine = engine or create_db_engine(config.database_url)
        self._factory = make_session_factory(self.engine, self.now)
        self._reader = make_session_factory(
            self.engine.execution_options(sqlite_begin="DEFERRED"), self.now
        )
        #: This process as the proxies' connection rows name it: whose heartbeat they
        #: carry, and whose watch acts on an administrator's termination.
        self.node = node or worker_name()
        self.session_changes = SessionChanges(self.engine, self.node)
        self.session_changes.watch_units(self._factory)
        self._vault: Vault | None = None
        self._audit_keys: KeyringFile[audit.AuditKeyring] | None = None

    def __repr__(self) -> str:
        return f"Pamcore(instance={str(self.config.instance_path)!r})"

    def now(self) -> dt.datetime:
        return self.clock()

    @property
    def plugins(self) -> PluginHost:
        """Built on first use, so a command that calls no hook (a listing) imports no plugin;
        a broken plugin fails (in strict mode) where it is first needed."""
        with self._plugins_lock:  # one host, whichever thread asks first
            if self._plugins is None:
                self._plugins = build_plugin_host(plugins_dir=self.config.plugins_dir)
            return self._plugins

    @property
    def hooks(self) -> Hooks:
        return self.plugins.hooks

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault.from_key_file(self.config.master_key_path)
        return self._vault

    def replace_vault(self, vault: Vault) -> None:
        self._vault = vault

    @property
    def audit_keys(self) -> KeyringFile[audit.AuditKeyring]:
        """The audit chain's keyring file, followed like the vault's (a rotation by another
        process is used from the next append on)."""
        if self._audit_keys is None:
            self._audit_keys = KeyringFile(self.config.audit_key_path, audit.AuditKeyring)
        return self._audit_keys

    @contextmanager
    def unit(self) -> Iterator[Session]:
        """A unit of work: everything in it commits together or not at all.

        A :class:`PamError` carrying an audit entry (a refusal) is recorded in a fresh unit
        after the failed one rolled back, so refusals are audited without half-writes.
        """
        try:
            with unit_of_work(self._factory) as db:
                yield db
        except PamError as exc:
            self._audit_refusal(exc)
            raise

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only unit (no write lock on SQLite), for listings. A refusal that carries
        an audit entry (an undecryptable secret met while reading) is still recorded."""
        try:
            with self._reader() as db:
                yield db
                db.rollback()
        except PamError as exc:
            self._audit_refusal(exc)
            raise

    def _audit_refusal(self, exc: PamError) -> None:
        if exc.audit_entry is not None:
            entry, exc.audit_entry = dict(exc.audit_entry), None  # once, however many units
            with unit_of_work(self._factory) as db:
                self.audit(db, entry.pop("actor"), entry.pop("action"), **entry)

    def audit(
        self,
        db: Session,
        actor: str,
        action: str,
        *,
        target: str = "",
        session_id: int | None = None,
        **details: Any,
    ) -> AuditEvent:
        return audit.append(
            db,
            keyring=self.audit_keys.keyring,
            actor=actor,
            action=action,
            at=self.now(),
            target=target,
            session_id=session_id,
            details=details,
            hooks=self.hooks,
        )

    def dispose(self) -> None:
        self.session_changes.close()
        self.engine.dispose()


def open_core(
    instance_path: Path | str | None = None, *, audit_key_required: bool = True, **kwargs: Any
) -> Pamcore:
    """Open an initialised instance at the current schema with its audit key (a clear error
    otherwise, creating nothing); only ``pamcore init``, which creates the key, opens one
    without it."""

    config = load_config(instance_path)
    if not config.instance_path.is_dir():
        raise ConfigurationError(
            f"no pamcore instance at {config.instance_path}; run 'pamcore init' "
            f"(or give --instance / PAMCORE_INSTANCE)"
        )
    core = Pamcore(config, **kwargs)
    try:
        require_current(core.engine)
        if audit_key_required and not config.audit_key_path.exists():
            # Every audited action would fail without it: refuse to start instead.
            raise ConfigurationError(
                f"no audit key at {config.audit_key_path}; run 'pamcore init' (after an "
                f"upgrade it creates the key; if the key was lost, restore it from a backup)"
            )
    except ConfigurationError:
        core.dispose()
        raise
    return core
