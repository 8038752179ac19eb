"""``pamcore.toml`` settings: the dashboard's origins, which decide the pages that may
open a browser terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from pamcore.config import load_config
from pamcore.errors import ConfigurationError


def _instance(tmp_path: Path, core_table: str) -> Path:
    (tmp_path / "pamcore.toml").write_text(f"[pamcore]\n{core_table}\n")
    return tmp_path


def test_the_dashboards_origins_default_to_public_host_and_the_bind_address(
    tmp_path: Path,
) -> None:
    config = load_config(tmp_path)
    assert config.allowed_origins == {"http://localhost:8080", "http://127.0.0.1:8080"}
    tls = config.with_overrides(
        public_host="PAM.example.com", web_port=443, web_tls_cert=Path("c"), web_tls_key=Path("k")
    )
    assert tls.allowed_origins == {"https://pam.example.com:443", "https://127.0.0.1:443"}
    # A wildcard bind names no address a browser opens; an IPv6 one is bracketed.
    assert config.with_overrides(web_bind="::").allowed_origins == {"http://localhost:8080"}
    assert config.with_overrides(web_bind="::1").allowed_origins == {
        "http://localhost:8080",
        "http://[::1]:8080",
    }


def test_web_origins_replace_the_default_normalised(tmp_path: Path) -> None:
    instance = _instance(
        tmp_path, 'web_origins = ["https://PAM.example.com", "http://127.0.0.1:8080/"]'
    )
    assert load_config(instance).allowed_origins == {
        "https://pam.example.com:443",
        "http://127.0.0.1:8080",
    }


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"https://pam.example.com"', "must be a list"),
        ('["pam.example.com"]', "is not an origin"),
        ('["ftp://pam.example.com"]', "is not an origin"),
        ('["https://pam.example.com/dashboard"]', "more than scheme, host and port"),
        ('["https://pam.example.com:99999"]', "out of range"),
    ],
)
def test_a_web_origin_that_is_not_an_origin_is_a_configuration_error(
    tmp_path: Path, value: str, why: str
) -> None:
    with pytest.raises(ConfigurationError, match=why) as refused:
        load_config(_instance(tmp_path, f"web_origins = {value}"))
    assert "pamcore.toml" in str(refused.value)


def test_a_tls_proxy_in_front_makes_the_dashboard_https(tmp_path: Path) -> None:
    assert not load_config(tmp_path).web_https
    assert load_config(_instance(tmp_path, "web_behind_tls_proxy = true")).web_https


def test_the_tls_proxy_setting_is_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="web_behind_tls_proxy must be true or false"):
        load_config(_instance(tmp_path, 'web_behind_tls_proxy = "yes"'))
