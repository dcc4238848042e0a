"""Unit tests for pks.config: PKS_LISTEN parsing and Settings from env and a TOML file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from pks.config import ConfigError, Settings, parse_listen
from pks.net import Address, Proto, SocketInfo

EXAMPLE = (
    "udp:0.0.0.0:5060;name=public;advertise=203.0.113.5:5060,"
    "tcp:0.0.0.0:5060;name=public,"
    "udp:10.0.0.1:5070;name=private"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the PKS_* variables it sets."""
    for name in list(os.environ):
        if name.upper().startswith("PKS_"):
            monkeypatch.delenv(name)


# --- parse_listen ----------------------------------------------------------------------------


def test_parse_listen_example() -> None:
    assert parse_listen(EXAMPLE) == (
        SocketInfo("public", Proto.UDP, "0.0.0.0", 5060, "203.0.113.5", 5060),
        SocketInfo("public", Proto.TCP, "0.0.0.0", 5060),
        SocketInfo("private", Proto.UDP, "10.0.0.1", 5070),
    )


def test_default_name_is_proto_host_port() -> None:
    assert [s.name for s in parse_listen("udp:127.0.0.1:5060, TCP:[::1]:0")] == [
        "udp:127.0.0.1:5060",
        "tcp:[::1]:0",
    ]


def test_ipv6_host_in_brackets_is_canonicalised() -> None:
    (sock,) = parse_listen("udp:[0:0::1]:5060")
    assert (sock.proto, sock.host, sock.port) == (Proto.UDP, "::1", 5060)


@pytest.mark.parametrize(
    ("advertise", "host", "port"),
    [
        ("203.0.113.5", "203.0.113.5", None),
        ("203.0.113.5:5080", "203.0.113.5", 5080),
        ("sip.example.com", "sip.example.com", None),
        ("sip.example.com:5061", "sip.example.com", 5061),
        ("[2001:db8::5]", "2001:db8::5", None),
        ("[2001:db8::5]:5062", "2001:db8::5", 5062),
    ],
)
def test_advertise_with_and_without_port(advertise: str, host: str, port: int | None) -> None:
    (sock,) = parse_listen(f"udp:10.0.0.1:5060;advertise={advertise}")
    assert (sock.advertise_host, sock.advertise_port) == (host, port)
    assert sock.public_port == (port or 5060)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls:1.2.3.4:5061", "entry 1 'tls:1.2.3.4:5061': unknown protocol 'tls'"),
        ("udp:1.2.3.4", "entry 1 'udp:1.2.3.4': missing port"),
        ("udp", "expected proto:host:port"),
        ("udp:1.2.3.4:65536", "port must be a number from 0 to 65535, got '65536'"),
        ("udp:1.2.3.4:50x", "port must be a number"),
        ("udp:example.com:5060", "'example.com' is not an IP address"),
        ("udp:::1:5060", "IPv6 address must be written in brackets"),
        ("udp:[::1:5060", "missing ']'"),
        ("udp:[1.2.3.4]:5060", "brackets are for IPv6 addresses only"),
        ("udp:1.2.3.4:5060,tcp:1.2.3.4:5060,udp:1.2.3.4:5060", "entry 3 .* same socket as entry 1"),
        ("udp:1.2.3.4:5060;name=a,udp:1.2.3.5:5060;name=a", "entry 2 .* name 'a' already used"),
        ("udp:1.2.3.4:5060,", "entry 2 '': empty entry"),
        ("udp:1.2.3.4:5060;name=", "bad name ''"),
        ("udp:1.2.3.4:5060;name=a b", "bad name 'a b'"),
        ("udp:1.2.3.4:5060;name=a;name=b", "name= given twice"),
        ("udp:1.2.3.4:5060;port=1", "unknown option 'port=1'"),
        ("udp:1.2.3.4:5060;advertise=", "advertise=: '' is neither an IP address nor a host name"),
        ("udp:1.2.3.4:5060;advertise=203.0.113.500", "'203.0.113.500' is not an IP address"),
        ("udp:1.2.3.4:5060;advertise=bad_host", "'bad_host' is neither"),
        ("udp:1.2.3.4:5060;advertise=1.2.3.4:0", "advertise=1.2.3.4:0: port must be .* 1 to"),
        ("udp:1.2.3.4:5060;advertise=::1", "IPv6 address must be written in brackets"),
    ],
)
def test_parse_listen_errors_name_the_entry_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_listen(text)


# --- Settings --------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings()
    assert [str(s) for s in settings.sockets] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert settings.db_url == "sqlite:///./pks.db"
    assert (settings.fr_timer, settings.fr_inv_timer) == (5.0, 120.0)
    assert settings.failover_code_set == frozenset({408, 500, 503})
    assert settings.unknown_source == "drop"
    assert (settings.max_forwards, settings.tcp_idle_timeout) == (70, 120.0)
    assert settings.max_message_size == 65535
    assert (settings.tcp_max_connections, settings.tcp_max_per_source) == (4096, 64)
    assert (settings.tcp_message_timeout, settings.tcp_max_output) == (10.0, 1 << 20)
    assert settings.default_socket is None and settings.admin_token is None
    assert settings.admin_address == Address("127.0.0.1", 8091)
    assert (settings.log_level, settings.server_header) == ("INFO", "pks-sip-proxy")
    assert (settings.db_poll_interval, settings.snapshot_cache) == (1.0, None)


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PKS_LISTEN": EXAMPLE,
        "PKS_DB_URL": "postgresql+psycopg://pks@db/pks",
        "PKS_FR_TIMER": "2.5",
        "PKS_FAILOVER_CODES": "408, 503,",
        "pks_unknown_source": "reject",
        "PKS_MAX_FORWARDS": "20",
        "PKS_DEFAULT_SOCKET": "private",
        "PKS_ADMIN_LISTEN": "[::1]:9000",
        "PKS_ADMIN_TOKEN": "s3cret",
        "PKS_LOG_LEVEL": "debug",
        "PKS_SERVER_HEADER": "",
        "PKS_DB_POLL_INTERVAL": "0.5",
        "PKS_SNAPSHOT_CACHE": "/tmp/pks-snapshot.json",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.sockets == parse_listen(EXAMPLE)
    assert settings.db_url == "postgresql+psycopg://pks@db/pks"
    assert settings.fr_timer == 2.5
    assert settings.failover_code_set == frozenset({408, 503})
    assert settings.unknown_source == "reject"
    assert settings.max_forwards == 20
    assert settings.default_socket == "private"
    assert settings.admin_address == Address("::1", 9000)
    assert settings.admin_token == "s3cret"
    assert settings.log_level == "DEBUG"
    assert settings.server_header == ""
    assert settings.db_poll_interval == 0.5
    assert settings.snapshot_cache == "/tmp/pks-snapshot.json"


def test_empty_optional_strings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKS_ADMIN_TOKEN", "")
    monkeypatch.setenv("PKS_DEFAULT_SOCKET", "")
    monkeypatch.setenv("PKS_SNAPSHOT_CACHE", "")
    settings = Settings()
    assert settings.admin_token is None and settings.default_socket is None
    assert settings.snapshot_cache is None


def test_from_toml_file_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pks.toml"
    config.write_text(
        'listen = ["udp:127.0.0.1:5070;name=lan", "tcp:127.0.0.1:5070;name=lan"]\n'
        "fr_timer = 3.0\n"
        "fr_inv_timer = 60\n"
        "failover_codes = [500, 503]\n"
        'default_socket = "lan"\n'
    )
    monkeypatch.setenv("PKS_CONFIG", str(config))
    monkeypatch.setenv("PKS_FR_INV_TIMER", "90")
    settings = Settings()
    assert [s.name for s in settings.sockets] == ["lan", "lan"]
    assert settings.fr_timer == 3.0
    assert settings.fr_inv_timer == 90.0  # the environment wins over the file
    assert settings.failover_code_set == frozenset({500, 503})
    assert settings.default_socket == "lan"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.fr_timer = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PKS_FR_TIMER": "soon"}, r"^PKS_FR_TIMER: Input should be a valid number.*'soon'"),
        ({"PKS_FR_INV_TIMER": "0"}, r"^PKS_FR_INV_TIMER: Input should be greater than 0"),
        ({"PKS_MAX_FORWARDS": "300"}, r"^PKS_MAX_FORWARDS: .*less than or equal to 255"),
        ({"PKS_TCP_IDLE_TIMEOUT": "-1"}, r"^PKS_TCP_IDLE_TIMEOUT: .*greater than 0"),
        ({"PKS_MAX_MESSAGE_SIZE": "100"}, r"^PKS_MAX_MESSAGE_SIZE: .*greater than or equal"),
        ({"PKS_TCP_MAX_CONNECTIONS": "0"}, r"^PKS_TCP_MAX_CONNECTIONS: .*greater than or equal"),
        (
            {"PKS_TCP_MAX_CONNECTIONS": "10", "PKS_TCP_MAX_PER_SOURCE": "11"},
            r"^PKS_TCP_MAX_PER_SOURCE: 11 is more than PKS_TCP_MAX_CONNECTIONS \(10\)",
        ),
        ({"PKS_TCP_MESSAGE_TIMEOUT": "0"}, r"^PKS_TCP_MESSAGE_TIMEOUT: .*greater than 0"),
        (
            {"PKS_TCP_MAX_OUTPUT": "4096"},
            r"^PKS_TCP_MAX_OUTPUT: 4096 is less than PKS_MAX_MESSAGE_SIZE \(65535\)",
        ),
        ({"PKS_UNKNOWN_SOURCE": "ignore"}, r"^PKS_UNKNOWN_SOURCE: Input should be 'drop' or"),
        ({"PKS_FAILOVER_CODES": "408,5xx"}, r"^PKS_FAILOVER_CODES: '5xx' is not a final status"),
        ({"PKS_FAILOVER_CODES": "180"}, r"^PKS_FAILOVER_CODES: '180' is not a final status"),
        ({"PKS_LISTEN": "udp:1.2.3.4:99999"}, r"^PKS_LISTEN: entry 1 'udp:1.2.3.4:99999': port"),
        ({"PKS_DEFAULT_SOCKET": "nope"}, r"^PKS_DEFAULT_SOCKET: no listen socket named 'nope'"),
        ({"PKS_ADMIN_LISTEN": "8091"}, r"^PKS_ADMIN_LISTEN: expected IP:port"),
        ({"PKS_LOG_LEVEL": "loud"}, r"^PKS_LOG_LEVEL: expected one of DEBUG, INFO"),
        ({"PKS_SERVER_HEADER": "a\r\nX-Evil: 1"}, r"^PKS_SERVER_HEADER: must be a single line"),
        ({"PKS_CONFIG": "/nonexistent/pks.toml"}, r"^PKS_CONFIG: no such file"),
        ({"PKS_DB_POLL_INTERVAL": "0"}, r"^PKS_DB_POLL_INTERVAL: .*greater than 0"),
        ({"PKS_DB_POLL_INTERVAL": "120"}, r"^PKS_DB_POLL_INTERVAL: .*less than or equal to 60"),
        (
            {"PKS_SNAPSHOT_CACHE": "/nonexistent/dir/snap.json"},
            r"^PKS_SNAPSHOT_CACHE: directory '/nonexistent/dir' does not exist",
        ),
        ({"PKS_SNAPSHOT_CACHE": "/tmp"}, r"^PKS_SNAPSHOT_CACHE: '/tmp' is a directory"),
        (
            {"PKS_FR_TIMER": "x", "PKS_MAX_FORWARDS": "x"},
            r"^PKS_FR_TIMER: .*; PKS_MAX_FORWARDS: ",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings()


def test_bad_file_values_name_the_file_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pks.toml"
    config.write_text('fr_timr = 3\nmax_forwards = "many"\n')
    monkeypatch.setenv("PKS_CONFIG", str(config))
    with pytest.raises(ConfigError) as info:
        Settings()
    assert f"'max_forwards' in {config}: Input should be a valid integer" in str(info.value)
    assert f"'fr_timr' in {config}: unknown setting" in str(info.value)


def test_unreadable_toml_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pks.toml"
    config.write_text("fr_timer = = 3\n")
    monkeypatch.setenv("PKS_CONFIG", str(config))
    with pytest.raises(ConfigError, match=f"^PKS_CONFIG: cannot read {config}"):
        Settings()


def test_dns_servers_are_parsed_and_checked() -> None:
    settings = Settings(dns_servers="127.0.0.53, [::1]:5353")
    assert [(a.host, a.port) for a in settings.dns_server_list] == [
        ("127.0.0.53", 53),
        ("::1", 5353),
    ]
    assert Settings().dns_server_list == ()
    for bad in ("::1", "dns.example:53", "127.0.0.1:0"):
        with pytest.raises(ConfigError, match="PKS_DNS_SERVERS"):
            Settings(dns_servers=bad)


def test_the_edge_settings_have_safe_defaults() -> None:
    s = Settings()
    assert s.method_set == frozenset({"INVITE"}) and s.max_user_length == 64
    assert s.max_transactions == 20000 and s.secret is None and s.secret_file == "pks.secret"


def test_allowed_methods_are_checked() -> None:
    assert Settings(allowed_methods="invite, MESSAGE").method_set == {"INVITE", "MESSAGE"}
    for bad in ("INVITE,BYE", "INVITE,CANCEL", "INV ITE", "ACK"):
        with pytest.raises((ConfigError, ValidationError), match=r"allowed_methods|ALLOWED"):
            Settings(allowed_methods=bad)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises((ConfigError, ValidationError)):
        Settings(secret="short")
