"""Resources, plugin settings and vaulted credentials through the inventory service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import AuditEvent, Platform, Resource, Secret
from pamcore.presenters import credential_record, resource_record
from pamcore.services import inventory as inv
from pamcore.services.common import CONSOLE
from pamcore.testing import builders as b
from tests.plugins import SettingsPlugin

PASSWORD = "Vault-only-Pa55word-7731"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBzZWNyZXQta2V5LW1hdGVyaWFsLWZvci10ZXN0cy1vbmx5LTQyNDI=\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
KEY_BODY = "QyNTUxOQAAACBzZWNyZXQta2V5LW1hdGVyaWFsLWZvci10ZXN0cy1vbmx5LTQyNDI="


@pytest.fixture
def settings_plugin(core: Pamcore) -> Iterator[None]:
    name = core.plugins.register(SettingsPlugin(), name="testplug")
    try:
        yield
    finally:
        core.plugins.unregister(name)


def test_create_update_resource(core: Pamcore) -> None:
    with core.unit() as db:
        inv.create_resource(
            core, db, CONSOLE, "dc01", "10.0.0.5", platform="windows", protocols=["rdp:3389"]
        )
    with core.unit() as db:
        inv.update_resource(
            core,
            db,
            CONSOLE,
            "DC01",
            inv.ResourceChanges(
                protocols=("rdp:3390", "ssh:22"),
                host_key="sha256:abcdef",
                trust_on_first_use=True,
            ),
        )
    with core.reader() as db:
        record = resource_record(inv.get_resource(db, "dc01"))
        assert record["platform"] == Platform.WINDOWS
        assert record["protocols"] == ["rdp:3390", "ssh:22"]
        assert record["host_key"] == "sha256:abcdef"
        assert db.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == (
            "resource.updated"
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "web+01"}, "name"),
        ({"address": "bad address"}, "address"),
        ({"protocols": ["ssh:99999"]}, "protocols"),
        ({"protocols": ["nosuchproto"]}, "protocols"),
        ({"protocols": []}, "protocols"),
        ({"platform": "vms"}, "platform"),
        ({"host_key": "not a key"}, "host_key"),
    ],
)
def test_resource_validation(core: Pamcore, kwargs: dict, field: str) -> None:
    args = {"name": "web01", "address": "127.0.0.1", **kwargs}
    with core.unit() as db, pytest.raises(ValidationError) as info:
        inv.create_resource(core, db, CONSOLE, **args)
    assert info.value.field == field


def test_duplicate_resource_name(core: Pamcore) -> None:
    with core.unit() as db:
        inv.create_resource(core, db, CONSOLE, "web01", "127.0.0.1", protocols=["ssh:22"])
    with core.unit() as db, pytest.raises(ValidationError, match="already exists"):
        inv.create_resource(core, db, CONSOLE, "WEB01", "127.0.0.2", protocols=["ssh:22"])


def test_plugin_settings(core: Pamcore, settings_plugin: None) -> None:
    with core.unit() as db:
        b.make_resource(db, "core-sw1", platform=Platform.CISCO_IOS)
        with pytest.raises(ValidationError, match=r"known: .*testplug\.timeout"):
            inv.set_setting(core, db, CONSOLE, "core-sw1", "testplug", "nope", "1")
        with pytest.raises(ValidationError, match="not a positive number") as info:
            inv.set_setting(core, db, CONSOLE, "core-sw1", "testplug", "timeout", "-3")
        assert info.value.field == "testplug.timeout"
        inv.set_setting(core, db, CONSOLE, "core-sw1", "testplug", "timeout", "30")
    with core.unit() as db:
        resource = inv.get_resource(db, "core-sw1")
        assert resource.settings == {"testplug": {"timeout": 30}}
        assert ("testplug", "timeout") in {(s.plugin, s.key) for s in inv.available_settings(core)}
        inv.unset_setting(core, db, CONSOLE, "core-sw1", "testplug", "timeout")
    with core.reader() as db:
        assert inv.get_resource(db, "core-sw1").settings == {}


def test_credentials_never_reveal_their_secrets(core: Pamcore, tmp_path: Path) -> None:
    with core.unit() as db:
        b.make_resource(db, "db01")
        cred = inv.create_credential(
            core,
            db,
            CONSOLE,
            "db01 root",
            "root",
            resource="db01",
            password=PASSWORD,
            private_key=PRIVATE_KEY,
            managed=True,
        )
        texts = [repr(cred), repr(cred.password_secret), str(credential_record(cred))]
    with core.unit() as db:
        inv.set_credential_password(core, db, CONSOLE, "db01 root", PASSWORD + "-new")
        cred = inv.get_credential(db, "db01 root")
        assert core.vault.reveal(cred.password_secret) == PASSWORD + "-new"
        assert core.vault.reveal(cred.private_key_secret).startswith("-----BEGIN OPENSSH")
        texts.append(repr(core.vault.reveal(cred.password_secret)))
    with core.unit() as db, pytest.raises(ValidationError) as info:
        inv.set_credential_key(core, db, CONSOLE, "db01 root", PASSWORD)
    texts.append(str(info.value))
    with core.reader() as db:
        texts += [str(e.details) for e in db.scalars(select(AuditEvent))]
    for text in texts:
        assert PASSWORD not in text and KEY_BODY not in text

    if core.engine.dialect.name == "sqlite":
        core.dispose()  # checkpoint the WAL into the file
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("pamcore.db*"))
        assert raw, "the SQLite file was not found"
        for secret in (PASSWORD, KEY_BODY, "BEGIN OPENSSH"):
            assert secret.encode() not in raw


def test_credential_rules(core: Pamcore) -> None:
    with core.unit() as db, pytest.raises(ValidationError, match="password, a private key"):
        inv.create_credential(core, db, CONSOLE, "empty", "root")
    with core.unit() as db, pytest.raises(ValidationError, match="not a private key"):
        inv.create_credential(core, db, CONSOLE, "k", "root", private_key="hello")
    with core.unit() as db:
        inv.create_credential(core, db, CONSOLE, "admin", "Administrator", password=PASSWORD)
        b.make_activity(db, "Windows Admin", credential=inv.get_credential(db, "admin"))
    with core.unit() as db, pytest.raises(ValidationError, match="Windows Admin"):
        inv.delete_credential(core, db, CONSOLE, "admin")


def test_delete_credential_removes_secrets(core: Pamcore) -> None:
    with core.unit() as db:
        inv.create_credential(core, db, CONSOLE, "spare", "spare", password=PASSWORD)
    with core.unit() as db:
        inv.delete_credential(core, db, CONSOLE, "spare")
    with core.reader() as db:
        assert db.scalars(select(Secret)).all() == []


def test_a_changed_host_key_refusal_says_how_to_re_pin() -> None:
    resource = Resource(name="web 01", host_key="ssh-ed25519 AAAAold")
    reason = inv.host_key_refusal(resource, "ssh-ed25519 AAAAnew", "SHA256:newprint")
    assert reason is not None
    assert reason.endswith(
        "re-pin it: pamcore resources update 'web 01' --host-key SHA256:newprint"
    )
    assert inv.host_key_refusal(resource, "ssh-ed25519 AAAAold", "SHA256:old") is None
