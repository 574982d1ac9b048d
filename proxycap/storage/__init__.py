"""Storage: the SQLite store of captured flows and the writer that fills it in batches from a child process."""
