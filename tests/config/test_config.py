"""Settings from TOML and the environment: precedence, aliases, type errors, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalvault.config import Secret, Settings, load_settings
from signalvault.errors import ConfigError

PROVIDER = """
[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
models = ["gpt-4o*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signalvault.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path):
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings == Settings()
    assert settings.server.port == 8700 and settings.store.data_dir == Path(".signalvault")


def test_file_in_working_directory_is_found(tmp_path):
    write(tmp_path, "[server]\nport = 9000\n")
    assert load_settings(environ={}, cwd=tmp_path).server.port == 9000


def test_signalvault_config_names_the_file_and_config_argument_wins(tmp_path):
    named = tmp_path / "named.toml"
    named.write_text("[server]\nport = 9001\n")
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("[server]\nport = 9002\n")
    env = {"SIGNALVAULT_CONFIG": str(named)}
    assert load_settings(environ=env, cwd=tmp_path).server.port == 9001
    assert load_settings(explicit, environ=env, cwd=tmp_path).server.port == 9002


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[server]\nport = 9000\nhost = "10.0.0.1"\n')
    env = {"SIGNALVAULT_SERVER_PORT": "9100", "SIGNALVAULT_LOGGING_LEVEL": "debug"}
    settings = load_settings(path, environ=env)
    assert settings.server.port == 9100 and settings.server.host == "10.0.0.1"
    assert settings.logging.level == "debug"


@pytest.mark.parametrize(
    ("alias", "section", "name"),
    [
        ("SIGNALVAULT_DATA_DIR", "store", "data_dir"),
        ("SIGNALVAULT_DATABASE_URL", "store", "database_url"),
        ("SIGNALVAULT_MASTER_KEY", "crypto", "master_key"),
    ],
)
def test_short_aliases_set_the_same_setting(tmp_path, alias, section, name):
    settings = load_settings(environ={alias: "/x/y"}, cwd=tmp_path)
    value = getattr(getattr(settings, section), name)
    assert value in (Path("/x/y"), Secret("/x/y"))


def test_environment_values_are_converted(tmp_path):
    env = {
        "SIGNALVAULT_STORE_DATABASE_URL": "",
        "SIGNALVAULT_CRYPTO_MASTER_KEY_FILE": "~/mk",
        "SIGNALVAULT_GUARDRAILS_RULES": '[{"detector": "pii", "action": "block"}]',
    }
    settings = load_settings(environ=env, cwd=tmp_path)
    assert settings.store.database_url is None
    assert settings.crypto.master_key_file == Path("~/mk").expanduser()
    assert settings.guardrails.rules == ({"detector": "pii", "action": "block"},)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[server]\nport = "eighty"\n', {}, "[server] port: expected an integer"),
        ("[server]\nport = 87.9\n", {}, "[server] port: expected an integer"),
        ("[server]\nport = true\n", {}, "[server] port: expected an integer"),
        ("", {"SIGNALVAULT_SERVER_PORT": "x"}, "[server] port: expected an integer"),
        ("[store]\ndata_dir = 5\n", {}, "[store] data_dir: expected a path string"),
        ("[logging]\nlevel = 3\n", {}, "[logging] level: expected a string"),
        ("[crypto]\nmaster_key = 1\n", {}, "[crypto] master_key: expected a string"),
        ("", {"SIGNALVAULT_GUARDRAILS_RULES": "{"}, "expected a JSON array of objects"),
        ("[guardrails]\nrules = [1]\n", {}, "expected an array of tables"),
        ("server = 1\n", {}, "[server] must be a table"),
        ("providers = 1\n", {}, "providers must be an array of tables"),
    ],
)
def test_type_errors_name_the_setting(tmp_path, toml, env, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, toml), environ=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_sections_and_settings_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section\(s\): servers"):
        load_settings(write(tmp_path, "[servers]\nport = 1\n"), environ={})
    with pytest.raises(ConfigError, match=r"\[server\]: unknown setting\(s\): prot"):
        load_settings(write(tmp_path, "[server]\nprot = 1\n"), environ={})
    with pytest.raises(ConfigError, match=r"\[\[providers\]\] #1: unknown setting\(s\): key"):
        load_settings(write(tmp_path, PROVIDER + 'key = "x"\n'), environ={})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path, "[server\n"), environ={})
    (tmp_path / "latin1.toml").write_bytes(b"\xff[server]\n")
    with pytest.raises(ConfigError, match="invalid TOML: the file is not UTF-8"):
        load_settings(tmp_path / "latin1.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(environ={"SIGNALVAULT_CONFIG": str(tmp_path)})


def test_providers_and_routes(tmp_path):
    toml = PROVIDER + (
        '\n[[providers]]\nname = "local"\nkind = "openai-compatible"\n'
        'base_url = "http://127.0.0.1:8000/v1"\nmodels = ["llama*"]\n'
        '\n[[routes]]\nmodel = "gpt-4o-mini"\ntargets = ["openai", "local:llama-3"]\n'
    )
    settings = load_settings(write(tmp_path, toml), environ={"OPENAI_API_KEY": "sk-1"})
    openai, local = settings.providers
    assert openai.api_key == Secret("sk-1") and openai.models == ("gpt-4o*",)
    assert local.api_key is None and local.timeout_seconds == 600.0
    assert settings.routes[0].targets == ("openai", "local:llama-3")


def test_provider_key_from_env_is_left_unset_when_the_variable_is_missing(tmp_path):
    settings = load_settings(write(tmp_path, PROVIDER), environ={})
    assert settings.providers[0].api_key is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[providers]]\nkind = "openai"\nbase_url = "http://x"\n', "every provider needs a name"),
        (
            '[[providers]]\nname = "p"\nkind = "azure"\nbase_url = "http://x"\n',
            "kind must be one of openai, anthropic, openai-compatible",
        ),
        (
            '[[providers]]\nname = "p"\nbase_url = "api.example.com"\n',
            "base_url must start with http(s)://",
        ),
        (
            '[[providers]]\nname = "openai"\nbase_url = "http://x"\n',
            "provider names must be unique",
        ),
        ('[[routes]]\nmodel = "m"\ntargets = []\n', "needs a model and at least one target"),
        ('[[routes]]\nmodel = "m"\ntargets = ["nope:m"]\n', "unknown provider in target"),
        ('[store]\nsqlite_synchronous = "off"\n', "sqlite_synchronous must be"),
        ('[guardrails]\nfailure_mode = "maybe"\n', "failure_mode must be"),
        ('[logging]\nformat = "xml"\n', "format must be"),
        ("[server]\nmax_body_bytes = 0\n", "must be positive"),
        (
            '[[providers]]\nname = "p"\nbase_url = "http://x"\nmax_stream_bytes = 0\n',
            "max_stream_bytes must be positive",
        ),
        ("[server]\nport = 70000\n", "port must be between 1 and 65535"),
        ("[server]\nworkers = 0\n", "workers must be at least 1"),
    ],
)
def test_invalid_providers_routes_and_values_are_rejected(tmp_path, extra, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, extra + "\n" + PROVIDER), environ={})
    assert message in str(caught.value)


def test_secrets_are_masked_in_repr():
    secret = Secret("sk-very-secret")
    assert "sk-very-secret" not in repr(secret) and "sk-very-secret" not in str(secret)
    assert secret.reveal() == "sk-very-secret"
    settings = load_settings(environ={"SIGNALVAULT_MASTER_KEY": "sk-very-secret"}, cwd=Path("/"))
    assert "sk-very-secret" not in repr(settings)
