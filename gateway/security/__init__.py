"""Connection-level security checks (WebSocket origin validation)."""
