"""The inspector: one flow's request, response, details and WebSocket messages, and how bodies are rendered."""
