"""Central over HTTP: the app factory, the agent-facing routes, the read API, OpenAPI."""
