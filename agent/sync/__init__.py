"""Getting the outbox to central: the signed sync client, its transport, and export bundles."""
