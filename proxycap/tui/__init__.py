"""The Textual UI: the app (layout and keys), its key table and command palette, and widgets by feature."""
