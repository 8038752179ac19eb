"""The SSH plugin's own hooks: added to the host by ``pamcore_addhooks``, and combined by
:mod:`pamcore_ssh.hooks` as each spec says (merged algorithms, first hint, every assistant).

Plugins here are small in-process classes registered on a host that has no built-ins and no
entry points, beside the real ``pamcore_ssh.plugin`` module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pamcore_ssh.hooks import ssh_algorithms, ssh_handshake_hint, ssh_terminal_assistants

from pamcore import hookimpl
from pamcore.config import Config
from pamcore.errors import ConfigurationError
from pamcore.model import Resource
from pamcore.plugins import PluginHost
from pamcore_ssh import plugin as ssh_plugin

#: The instance configuration the SSH hooks receive (no plugin settings).
CONFIG = Config(Path("instance"), "sqlite://", Path("master.key"))


def answering(hook: str, answer: Any) -> object:
    """A plugin whose one hook returns ``answer`` whatever it is asked."""

    def impl(self: object, **kwargs: Any) -> Any:
        return answer

    impl.__name__ = hook
    return type("Answer", (), {hook: hookimpl(impl)})()


def ssh_host(*plugins: object) -> PluginHost:
    """The SSH plugin registered after the others, as entry points load (``cisco_legacy``
    before ``ssh``): their implementations exist before the specs do."""
    host = PluginHost(strict=True)
    for n, plugin in enumerate(plugins):
        host.register(plugin, name=f"p{n}")
    host.register(ssh_plugin, name="ssh")
    return host


def host_with(hook: str, *answers: Any) -> PluginHost:
    return ssh_host(*(answering(hook, answer) for answer in answers))


def test_the_ssh_plugin_adds_its_hooks_once_per_host() -> None:
    host = ssh_host()
    assert all(
        getattr(host.hooks.relay, name).has_spec()
        for name in (
            "pamcore_ssh_algorithms",
            "pamcore_ssh_handshake_hint",
            "pamcore_ssh_terminal_assistant",
        )
    )
    host.unregister("ssh")  # registering it again replays pamcore_addhooks
    host.register(ssh_plugin, name="ssh")
    assert host.hooks.relay.pamcore_ssh_algorithms.has_spec()


def test_ssh_algorithms_merge_keeps_order_and_drops_duplicates() -> None:
    host = host_with(
        "pamcore_ssh_algorithms",
        {"kex": ["k1", "k2"], "mac": ["m1"]},
        None,
        {"kex": ["k2", "k3"], "mac": ["m1"]},
    )
    # pluggy calls the last registered first; each list keeps the first plugin's preference.
    assert ssh_algorithms(host.hooks, Resource(name="sw01"), CONFIG) == {
        "kex": ["k2", "k3", "k1"],
        "mac": ["m1"],
    }


def test_unknown_ssh_algorithm_kind_is_a_configuration_error() -> None:
    host = host_with("pamcore_ssh_algorithms", {"ciphers": ["aes128-cbc"]})
    with pytest.raises(ConfigurationError, match="unknown SSH algorithm kind 'ciphers'"):
        ssh_algorithms(host.hooks, Resource(name="sw01"), CONFIG)


def test_ssh_handshake_hint_stops_at_first_answer() -> None:
    called: list[str] = []

    def hinting(name: str, answer: str | None) -> object:
        class Plugin:
            @hookimpl
            def pamcore_ssh_handshake_hint(self, resource: Resource, error: str) -> str | None:
                called.append(name)
                return answer

        return Plugin()

    host = ssh_host(hinting("first", "first hint"), hinting("second", "second hint"))
    host.register(hinting("silent", None), name="silent")
    # Registered last, called first: "silent" passes, "second" answers, "first" is not asked.
    hint = ssh_handshake_hint(host.hooks, Resource(name="sw01"), "kex failed", CONFIG)
    assert hint == "second hint"
    assert called == ["silent", "second"]


def test_ssh_terminal_assistants_are_collected() -> None:
    host = host_with("pamcore_ssh_terminal_assistant", None, list, dict)
    factories = ssh_terminal_assistants(host.hooks, object(), object(), object(), object())  # type: ignore[arg-type]
    assert sorted(f.__name__ for f in factories) == ["dict", "list"]
