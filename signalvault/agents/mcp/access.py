"""Which tools of an MCP server a gateway key may list and call: the globs of the key (by id
or name) in `key_tools`, else of its project in `project_tools`, else the server's `tools`.

The smallest piece that answers "may this key use tool X" for MCP; tool policies in the
versioned guardrail policies (issue 13, part 3) may later take over this question.
"""

from __future__ import annotations

import fnmatch

from signalvault.config import McpServerSettings
from signalvault.crypto.gateway_keys import GatewayKey


def tool_globs(server: McpServerSettings, key: GatewayKey) -> tuple[str, ...]:
    """The globs that apply to `key`: the most specific entry wins."""
    for name in (key.id, key.name):
        if name in server.key_tools:
            return server.key_tools[name]
    if key.project in server.project_tools:
        return server.project_tools[key.project]
    return server.tools


def allows_tool(server: McpServerSettings, key: GatewayKey, tool: str) -> bool:
    return any(fnmatch.fnmatchcase(tool, glob) for glob in tool_globs(server, key))
