"""Planner and coder agents that drive Shipway's tools over MCP.

Agents never import `tools`, `sandbox` or `knowledge_base`: they reach every capability
through an MCP client session, so the server's gates hold for them as for any client.
"""
