"""Which MCP tools a key may use, and the [[mcp_servers]] / [telemetry] settings refused."""

from __future__ import annotations

import pytest

from signalvault.agents.mcp.access import allows_tool
from signalvault.config import McpServerSettings, TelemetrySettings, load_settings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import ConfigError

SERVER = McpServerSettings(
    name="files",
    url="http://127.0.0.1:1/mcp",
    tools=("read_*",),
    project_tools={"ops": ("*",)},
    key_tools={"key_1": ("read_file",), "auditor": ()},
)


def key(id: str = "key_9", name: str = "agent", project: str = "default") -> GatewayKey:
    return GatewayKey(
        id=id, name=name, project=project, environment="dev", prefix="sv-dev-x", models=(),
        rpm=None, tpm=None, expires_at=None, revoked_at=None, created_at=0.0, created_by="t",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("who", "tool", "allowed"),
    [
        (key(), "read_file", True),
        (key(), "delete_file", False),
        (key(project="ops"), "delete_file", True),  # the project's globs replace `tools`
        (key(id="key_1", project="ops"), "read_dir", False),  # the key's own list wins
        (key(id="key_1"), "read_file", True),
        (key(name="auditor"), "read_file", False),  # an empty list allows nothing
    ],
)
def test_the_most_specific_tool_list_decides(who, tool, allowed):
    assert allows_tool(SERVER, who, tool) is allowed


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[mcp_servers]]\nname = "a"\n', "exactly one of `url` and `command`"),
        ('[[mcp_servers]]\nname = "a"\nurl = "http://x"\ncommand = "y"\n', "exactly one"),
        ('[[mcp_servers]]\nname = "a b"\ncommand = "y"\n', "letters, digits"),
        ('[[mcp_servers]]\nname = "a"\nurl = "ftp://x"\n', "url must start with http"),
        ('[[mcp_servers]]\nname = "a"\ncommand = "x"\n[[mcp_servers]]\nname = "a"\ncommand = "y"\n',
         "unique"),
        ('[telemetry]\notlp_endpoint = "collector:4318"\n', "otlp_endpoint must start"),
        ('[telemetry]\nbatch_size = 10\nqueue_size = 5\n', "batch_size must not exceed"),
    ],
)  # fmt: skip
def test_bad_agent_settings_are_refused_with_one_line(tmp_path, toml, message):
    path = tmp_path / "signalvault.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_mcp_server_secrets_stay_masked(tmp_path):
    path = tmp_path / "signalvault.toml"
    path.write_text(
        '[[mcp_servers]]\nname = "t"\nurl = "https://mcp.example.com"\n'
        'headers = {Authorization = "Bearer upstream-token-123"}\n'
    )
    settings = load_settings(path, environ={"SIGNALVAULT_TELEMETRY_HEADERS": '{"k": "v-secret"}'})
    assert "upstream-token-123" not in repr(settings.mcp_servers)
    assert settings.telemetry.headers["k"].reveal() == "v-secret"
    assert "v-secret" not in repr(settings.telemetry)
    assert TelemetrySettings().otlp_endpoint == ""  # off unless asked
