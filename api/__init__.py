"""HTTP API (FastAPI): commands, queries, live push. Depends on ports, never on adapters."""
