"""Which MCP tools a key may use (the server's exposure, then the policy's tool_allowlist), and
the [[mcp_servers]] / [telemetry] settings refused."""

from __future__ import annotations

import pytest

from signalvault.agents.mcp.access import is_exposed, usable
from signalvault.agents.tool_policy import ToolPolicy
from signalvault.config import McpServerSettings, TelemetrySettings, load_settings
from signalvault.errors import ConfigError
from signalvault.guardrails.engine import Context, Engine
from signalvault.guardrails.policy import Policy, parse_rules

SERVER = McpServerSettings(name="files", url="http://127.0.0.1:1/mcp", tools=("read_*", "list_*"))
TOOLS = ["read_file", "read_dir", "list_dir", "delete_file"]
RULES = parse_rules(
    [
        {"name": "everyone", "detector": "tool_allowlist", "action": "block",
         "options": {"tools": ["read_*", "list_*"]}},
        {"name": "ops-only-reads-files", "detector": "tool_allowlist", "action": "block",
         "scope": "project:ops", "options": {"tools": ["read_file"]}},
        {"name": "audited", "detector": "tool_allowlist", "action": "log",
         "scope": "key:key_7", "options": {"tools": []}},
    ]
)  # fmt: skip
POLICY = ToolPolicy(Engine(Policy(2, RULES), lambda text, model: len(text)))


@pytest.mark.parametrize(
    ("context", "shown"),
    [
        (Context(project="default", key_id="key_1"), {"read_file", "read_dir", "list_dir"}),
        # Every applying blocking allowlist must allow a tool (the project's narrows further).
        (Context(project="ops", key_id="key_2"), {"read_file"}),
        # A log-only allowlist records calls; it hides nothing.
        (Context(project="default", key_id="key_7"), {"read_file", "read_dir", "list_dir"}),
    ],
)
def test_a_key_lists_the_exposed_tools_its_policy_allows(context, shown):
    assert usable(SERVER, POLICY, context, TOOLS) == shown


def test_the_server_exposes_only_its_tools_globs_whatever_the_policy():
    assert not is_exposed(SERVER, "delete_file")
    open_policy = ToolPolicy(Engine(Policy(1, ()), lambda text, model: len(text)))
    assert "delete_file" not in usable(SERVER, open_policy, Context(), TOOLS)


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
        ('[[mcp_servers]]\nname = "a"\ncommand = "y"\nkey_tools = {k = ["*"]}\n',
         "unknown setting.*key_tools.*tool_allowlist"),
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
