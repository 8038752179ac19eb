"""People: users, their role, and groups."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Column, Enum, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pamcore.model.base import Base, stamped_column


class Role(enum.StrEnum):
    """What a person may do in pamcore itself (approval rights come from connection profiles)."""

    USER = "user"
    APPROVER = "approver"
    ADMIN = "admin"
    AUDITOR = "auditor"


def enum_column(enum_cls: type[enum.Enum], name: str) -> Enum:
    """Store enum *values* as plain strings (no native PG enum): migrations stay simple."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        validate_strings=True,
        length=32,
        values_callable=lambda cls: [m.value for m in cls],
    )


user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"), default=Role.USER)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    #: Who vouches for the password: ``local`` (the hash above) or a directory plugin's
    #: name (``ldap``), whose sign-in creates and refreshes the user.
    source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    #: TOTP second factor (RFC 6238): the shared secret lives in the vault.
    totp_secret_id: Mapped[int | None] = mapped_column(
        ForeignKey("secrets.id", ondelete="SET NULL"), default=None
    )
    #: Last TOTP time step accepted (RFC 6238 §5.2: a code is valid once, no replay).
    totp_last_step: Mapped[int | None] = mapped_column(default=None)
    failed_logins: Mapped[int] = mapped_column(default=0)
    #: Dashboard sign-ins carry the generation they began under; moving it on ends them all.
    sign_in_generation: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = stamped_column()

    groups: Mapped[list[Group]] = relationship(
        secondary=user_groups, back_populates="members", order_by="Group.name"
    )
    ssh_keys: Mapped[list[UserKey]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="UserKey.id"
    )

    @property
    def group_ids(self) -> set[int]:
        return {g.id for g in self.groups}


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")

    members: Mapped[list[User]] = relationship(
        secondary=user_groups, back_populates="groups", order_by="User.username"
    )


class UserKey(Base):
    """An SSH public key a user registered to sign in to the SSH proxy."""

    __tablename__ = "user_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    #: OpenSSH public-key line (``ssh-ed25519 AAAA... comment``).
    public_key: Mapped[str] = mapped_column(Text)
    #: ``SHA256:...`` as ``ssh-keygen -l`` prints it; unique, so a key names one user.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = stamped_column()

    user: Mapped[User] = relationship(back_populates="ssh_keys")


class ApiToken(Base):
    """A token scripts use for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    #: First characters of the token, shown in listings so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = stamped_column()
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()
