"""What an identity plugin (``pamcore_authenticate``: LDAP, Active Directory) uses to turn
a person its directory vouches for into a pamcore user, and to retire one the directory
disabled or deleted. The decisions (what a refresh changes, what retiring cancels) are the
core's, in :mod:`pamcore.services.directory`."""

from __future__ import annotations

from pamcore.services.directory import (
    DirectoryAccount,
    directory_usernames,
    provision_directory_user,
    retire_directory_user,
    user_source,
)

__all__ = [
    "DirectoryAccount",
    "directory_usernames",
    "provision_directory_user",
    "retire_directory_user",
    "user_source",
]
