"""pamcore-cisco-legacy without the network: the settings and their validation against the
installed asyncssh, what the algorithms hook gives (profile, explicit lists, the proxy-wide
list), the pinning guard, the warning filter, and the enable assistant."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from asyncssh.crypto.dh import DH
from asyncssh.kex_dh import _group1_g, _group1_p  # the Oakley group 2 of RFC 2409 §6.2
from cryptography.utils import CryptographyDeprecationWarning
from pamcore_cisco_legacy.enable import EnableAssistant
from pamcore_cisco_legacy.ios import checked_username
from pamcore_ssh.hooks import ssh_algorithms

from pamcore.config import Config
from pamcore.errors import ActionFailed, ConfigurationError
from pamcore.model import Resource
from pamcore.plugins import build_plugin_host
from pamcore_cisco_legacy import algorithms as algs

PROFILE = {
    "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group-exchange-sha1"],
    "encryption": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
    "mac": ["hmac-sha1-96", "hmac-md5"],
    "server_host_key": ["ssh-dss"],
}


def config(**table: Any) -> Config:
    return Config(
        Path("instance"), "sqlite://", Path("master.key"), plugin_settings={"cisco_legacy": table}
    )


def resource(name: str = "sw01", address: str = "10.20.0.5", **settings: str) -> Resource:
    return Resource(name=name, address=address, settings={"cisco_legacy": settings})


@pytest.mark.parametrize(
    ("typed", "stored"), [("off", "off"), (" Cisco-Legacy ", "cisco-legacy"), ("OFF", "off")]
)
def test_profile_setting_accepts_off_and_profiles(typed: str, stored: str) -> None:
    assert algs.parse_profile(typed) == stored


@pytest.mark.parametrize("typed", ["on", "yes", "", "cisco"])
def test_profile_setting_explains_what_is_accepted(typed: str) -> None:
    with pytest.raises(ValueError, match=r"must be 'off' or a profile name \(cisco-legacy\)"):
        algs.parse_profile(typed)


def test_settings_registered_through_the_entry_point_validate_names() -> None:
    settings = build_plugin_host(strict=True).hooks.resource_settings()
    assert {key for plugin, key in settings if plugin == "cisco_legacy"} == {
        "legacy_algorithms",
        "kex",
        "ciphers",
        "macs",
        "host_keys",
        "enable_credential",
    }
    ciphers = settings[("cisco_legacy", "ciphers")]
    assert ciphers.parse(" aes128-cbc  3des-cbc,aes128-cbc ") == "aes128-cbc,3des-cbc"
    assert ciphers.parse("") == ""
    with pytest.raises(ValueError) as caught:
        ciphers.parse("aes128-cbc, des-cbc")
    message = str(caught.value)
    assert message.startswith("des-cbc is not an encryption algorithm this asyncssh supports")
    assert "supported: " in message and "3des-cbc" in message
    with pytest.raises(ValueError, match="gss-gex-sha1 is not a key exchange algorithm"):
        settings[("cisco_legacy", "kex")].parse("gss-gex-sha1")  # no Kerberos on the proxy


def test_the_set_setting_service_refuses_an_unknown_name(core: Any) -> None:
    """What ``pamcore resources set-setting`` and the admin page call."""
    from pamcore.errors import ValidationError
    from pamcore.services.common import CONSOLE
    from pamcore.services.inventory import set_setting
    from pamcore.testing import builders as b

    with core.unit() as db:
        b.make_resource(db, "sw01")
    with core.unit() as db, pytest.raises(ValidationError, match="hmac-sha3 is not a MAC"):
        set_setting(core, db, CONSOLE, "sw01", "cisco_legacy", "macs", "hmac-sha3")


def test_the_admin_page_shows_the_settings_and_refuses_an_unknown_name(core: Any) -> None:
    import html
    import re

    from pamcore.model import Role
    from pamcore.testing import builders as b
    from pamcore.web.app import create_app

    with core.unit() as db:
        b.make_user(db, "erin", Role.ADMIN, password="Erin-admin-pw-1")
        b.make_resource(db, "sw01")
    client = create_app(core, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    assert client.post("/login", data={"username": "erin", "password": "Erin-admin-pw-1"})
    page = client.get("/admin/resource/sw01/edit").get_data(as_text=True)
    assert "cisco_legacy.legacy_algorithms" in page and "cisco_legacy.enable_credential" in page

    def set_ciphers(value: str) -> str:
        form = {"resource": "sw01", "setting": "cisco_legacy.ciphers", "value": value}
        answer = client.post("/admin/resources/setting", data=form, follow_redirects=True)
        found = re.search(r'class="flash flash-(\w+)">([^<]*)<', answer.get_data(as_text=True))
        assert found
        return f"{found.group(1)}: {html.unescape(found.group(2))}"

    assert set_ciphers("aes128-cbc,des-cbc").startswith(
        "error: cisco_legacy.ciphers: des-cbc is not an encryption algorithm this "
        "asyncssh supports; supported: "
    )
    assert set_ciphers("3des-cbc") == "success: cisco_legacy.ciphers set on sw01"


def test_the_profile_adds_exactly_the_promised_algorithms() -> None:
    hooks = build_plugin_host(strict=True).hooks
    chosen = ssh_algorithms(hooks, resource(legacy_algorithms="cisco-legacy"), config())
    assert chosen == PROFILE
    assert ssh_algorithms(hooks, resource(), config()) == {}


def test_every_promised_algorithm_is_supported_and_off_by_default() -> None:
    """Fails when an asyncssh (or cryptography) release drops one: re-check the pins."""
    for profile in algs.PROFILES.values():
        for kind, names in profile.items():
            missing = set(names) - set(algs.supported(kind))
            assert not missing, f"asyncssh no longer supports {kind} {missing}"
            assert not set(names) & set(algs.defaults(kind)), "only legacy names belong here"


def test_explicit_lists_alone_or_after_the_profile() -> None:
    hooks = build_plugin_host(strict=True).hooks
    alone = resource(ciphers="3des-cbc", host_keys="ssh-dss")
    assert ssh_algorithms(hooks, alone, config()) == {
        "encryption": ["3des-cbc"],
        "server_host_key": ["ssh-dss"],
    }
    both = resource(legacy_algorithms="cisco-legacy", macs="hmac-md5-96,hmac-md5")
    assert ssh_algorithms(hooks, both, config())["mac"] == [
        "hmac-sha1-96",
        "hmac-md5",
        "hmac-md5-96",
    ]


def test_proxy_wide_list_by_name_or_address_and_a_resource_can_opt_out() -> None:
    hooks = build_plugin_host(strict=True).hooks
    wide = config(resources=["core-*", "10.20.*"])
    assert ssh_algorithms(hooks, resource("core-sw1", "192.0.2.1"), wide) == PROFILE
    assert ssh_algorithms(hooks, resource("edge", "10.20.3.4"), wide) == PROFILE
    assert ssh_algorithms(hooks, resource("edge", "192.0.2.1"), wide) == {}
    opted_out = resource("core-sw2", "192.0.2.2", legacy_algorithms="off")
    assert ssh_algorithms(hooks, opted_out, wide) == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"resources": "sw*"}, r"resources must be a list of resource names or address patterns"),
        ({"resources": ["sw*"], "profile": "ios-xe"}, r"profile 'ios-xe' is unknown"),
    ],
)
def test_a_malformed_proxy_wide_table_is_a_clear_error(table: dict[str, Any], message: str) -> None:
    hooks = build_plugin_host(strict=True).hooks
    with pytest.raises(ConfigurationError, match=r"\[plugins.cisco_legacy\] " + message):
        ssh_algorithms(hooks, resource(), config(**table))


def test_ffdh_warning_is_filtered_for_asyncssh_dh_only() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        with pytest.raises(CryptographyDeprecationWarning):
            DH(_group1_g, _group1_p).get_public()
        ssh_algorithms(
            build_plugin_host(strict=True).hooks,
            resource(legacy_algorithms="cisco-legacy"),
            config(),
        )
        DH(_group1_g, _group1_p).get_public()  # asyncssh's module: filtered now
        with pytest.raises(CryptographyDeprecationWarning):  # from anywhere else: not
            warnings.warn("other", CryptographyDeprecationWarning, stacklevel=1)


# -- the enable assistant ----------------------------------------------------------------------

SECRET = b"En-secret-1"


def at_prompt(prompt: bytes = b"\r\nRouter>") -> EnableAssistant:
    """An assistant that saw the device's first prompt."""
    assistant = EnableAssistant(SECRET)
    assert assistant.shown(b"\r\n\r\n" + prompt) == b""
    return assistant


@pytest.mark.parametrize("typed", [b"enable\r", b"en\r\n", b"ENABLE 15\r", b"enablx\x7fe\r"])
def test_enable_then_password_prompt_is_answered_once(typed: bytes) -> None:
    assistant = at_prompt()
    assistant.typed(typed)
    assert assistant.shown(b"enable\r\nPass") == b""  # the question arrives in pieces
    assert assistant.shown(b"word: ") == SECRET + b"\r"
    assert assistant.shown(b"\r\nPassword: ") == b""  # once: a wrong secret is not retried


def test_each_enable_at_the_prompt_is_answered_once() -> None:
    assistant = at_prompt(b"sw01#")  # logged in privileged: its user-EXEC prompt is sw01>
    assert assistant.prompt == b"sw01>"
    assistant.typed(b"disable\r")
    assistant.shown(b"\r\nsw01>")
    for _ in range(2):
        assistant.typed(b"show version\r")
        assistant.shown(b"show version\r\nCisco IOS Software\r\nsw01>")
        assistant.typed(b"en\r")
        assert assistant.shown(b"en\r\nPassword: ") == SECRET + b"\r"
        assistant.typed(b"disable\r")
        assistant.shown(b"\r\nsw01#disable\r\nsw01>")


@pytest.mark.parametrize(
    ("typed", "then"),
    [
        (b"show running-config\r", b""),
        (b"enable\r", b"x"),  # the user started answering themselves
        (b"disable\r", b""),
        (b"enable\x15show\r", b""),  # Ctrl+U erased the line
    ],
)
def test_no_answer_unless_the_last_line_was_enable(typed: bytes, then: bytes) -> None:
    assistant = at_prompt()
    assistant.typed(typed)
    assistant.typed(then)
    assert assistant.shown(b"Password: ") == b""


def test_no_answer_after_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import pamcore_cisco_legacy.enable as enable

    now = [1000.0]
    monkeypatch.setattr(enable.time, "monotonic", lambda: now[0])
    assistant = at_prompt()
    assistant.typed(b"enable\r")
    now[0] += enable.ANSWER_WINDOW + 1
    assert assistant.shown(b"Password: ") == b""
    assert "En-secret" not in repr(assistant)


@pytest.mark.parametrize(
    "onward",
    [
        b"ssh -l me 192.0.2.7\r",
        b"telnet 192.0.2.7\r",
        b"connect evil\r",
        b"rlogin evil\r",
        b"te 192.0.2.7\r",  # an abbreviation of telnet (or terminal: not sure, so onward)
        b"s -l me evil\r",  # s: show or ssh
        b"evil-host\r",  # a bare host name: IOS telnets to it
        b"192.0.2.7\r",
        b"1\r",  # resume connection 1
        b"res\r",
        b"sh\tevil\r",  # Tab completion: the line is not what was typed
        b"show x\x01telnet\r",  # Ctrl+A moved the cursor: the line is not what was typed
        b"\x1b[A\r",  # history
    ],
)
def test_never_an_answer_after_a_line_that_may_leave_the_device(onward: bytes) -> None:
    assistant = at_prompt()
    assistant.typed(onward)
    assistant.shown(b"\r\nTrying 192.0.2.7 ... Open\r\n\r\nRouter>")  # it imitates the device
    assistant.typed(b"enable\r")
    assert assistant.shown(b"enable\r\nPassword: ") == b""
    assistant.typed(b"exit\r")
    assistant.shown(b"\r\n[Connection to 192.0.2.7 closed by foreign host]\r\nRouter>")
    assistant.typed(b"enable\r")  # back on the device, or a host saying so: no way to know
    assert assistant.shown(b"enable\r\nPassword: ") == b""
    assert assistant.onward


@pytest.mark.parametrize(
    "shown",
    [
        b"\r\nOther>",  # another host's prompt
        b"\r\nRouter(config)#",  # not user EXEC
        b"\r\nRouter>show version\r\nCisco IOS Software\r\n",  # still printing
    ],
)
def test_no_answer_away_from_the_devices_own_prompt(shown: bytes) -> None:
    assistant = at_prompt()
    assistant.shown(shown)
    assistant.typed(b"enable\r")
    assert assistant.shown(b"Password: ") == b""


def test_no_answer_when_the_user_typed_before_the_first_prompt() -> None:
    assistant = EnableAssistant(SECRET)
    assistant.typed(b"\r")
    assistant.shown(b"\r\nRouter>")
    assistant.typed(b"enable\r")
    assert not assistant.prompt and assistant.shown(b"enable\r\nPassword: ") == b""


@pytest.mark.parametrize("name", ["admin\n", "ad min", ""])
def test_an_ios_user_name_is_one_word_without_a_line_end(name: str) -> None:
    with pytest.raises(ActionFailed, match="is not a valid IOS user name"):
        checked_username(name)
