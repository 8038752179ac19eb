"""What is protected: resources, the protocols they speak, vaulted secrets and credentials."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pamcore.model.base import Base, stamped_column
from pamcore.model.directory import enum_column


class Platform(enum.StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"
    CISCO_IOS = "cisco-ios"
    OTHER = "other"


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    platform: Mapped[Platform] = mapped_column(
        enum_column(Platform, "platform"), default=Platform.LINUX
    )
    description: Mapped[str] = mapped_column(String(512), default="")
    #: Pinned SSH host key (OpenSSH public-key line) or certificate fingerprint (``sha256:...``).
    host_key: Mapped[str | None] = mapped_column(Text, default=None)
    #: Accept and pin the first key seen when nothing is pinned yet.
    trust_on_first_use: Mapped[bool] = mapped_column(default=False)
    #: Per-plugin settings, ``{plugin_name: {key: value}}``, validated by the plugin's spec.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = stamped_column()

    protocols: Mapped[list[ResourceProtocol]] = relationship(
        back_populates="resource", cascade="all, delete-orphan", order_by="ResourceProtocol.name"
    )

    def port_for(self, protocol: str) -> int | None:
        for p in self.protocols:
            if p.name == protocol:
                return p.port
        return None


class ResourceProtocol(Base):
    __tablename__ = "resource_protocols"
    __table_args__ = (UniqueConstraint("resource_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    port: Mapped[int]

    resource: Mapped[Resource] = relationship(back_populates="protocols")


class Secret(Base):
    """One AES-256-GCM ciphertext. ``ref`` is random and bound in as associated data, so a
    ciphertext copied onto another row does not decrypt."""

    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(36), unique=True)
    #: Named secrets belong to the instance (e.g. a proxy host key); credential secrets have none.
    name: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    key_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = stamped_column()
    rotated_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Credential(Base):
    """An account on a resource (or a domain account when ``resource`` is empty)."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    username: Mapped[str] = mapped_column(String(128))
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resources.id", ondelete="SET NULL"), default=None
    )
    password_secret_id: Mapped[int | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    private_key_secret_id: Mapped[int | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    #: Managed credentials are rotated by pamcore (post-session actions); others are only stored.
    managed: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[dt.datetime] = stamped_column()
    rotated_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    resource: Mapped[Resource | None] = relationship()
    password_secret: Mapped[Secret | None] = relationship(foreign_keys=[password_secret_id])
    private_key_secret: Mapped[Secret | None] = relationship(foreign_keys=[private_key_secret_id])
