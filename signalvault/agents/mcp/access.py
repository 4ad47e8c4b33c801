"""Which tools of an MCP server a caller may list and call. Two questions, asked in this order:

- Does the gateway expose the tool at all? The server's `tools` globs in `[[mcp_servers]]`: a
  property of the server (what the operator wants reachable through it), the same for every key.
- May this key use it? The active guardrail policy's `tool_allowlist` rules, the same rules that
  decide which tools a model may be offered and call on /v1 (scoped per key and project,
  versioned, reviewed). One allowlist for both doors.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from signalvault.agents.tool_policy import ToolPolicy
from signalvault.config import McpServerSettings
from signalvault.guardrails.engine import Context


def is_exposed(server: McpServerSettings, tool: str) -> bool:
    """True if the server's `tools` globs let the gateway expose `tool` to anyone."""
    return any(fnmatch.fnmatchcase(tool, glob) for glob in server.tools)


def usable(
    server: McpServerSettings, policy: ToolPolicy, context: Context, names: Sequence[str]
) -> set[str]:
    """The names among `names` the caller of `context` may list: exposed and not refused by a
    blocking allowlist (a log-only allowlist records calls, it hides nothing)."""
    exposed = [name for name in names if is_exposed(server, name)]
    return set(exposed) - policy.refused(exposed, context)
