"""The Model Context Protocol server: headrace's runs, checks, lineage and warehouse for assistants.

``headrace mcp`` serves it over stdio (desktop assistants) or streamable HTTP. It is
built on the official ``mcp`` SDK, an optional dependency (``pip install 'headrace[mcp]'``).

Example:
    >>> from headrace.mcp.mcp_context import McpContext
    >>> from headrace.mcp.server import build_server
    >>> build_server(McpContext(settings, store, pipelines=Path("pipelines"))).run("stdio")
"""
