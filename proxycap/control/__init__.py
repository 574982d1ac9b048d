"""Control: a capture session (bus, store writer and engine wired together) and the control API through which a UI
acts on it."""
