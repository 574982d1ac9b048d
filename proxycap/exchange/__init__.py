"""Captures in and out of proxycap: copy one flow as text, export and import HAR, mitmproxy flow files and Fiddler
session archives, with optional redaction. Formats only, no UI: the TUI and the CLI call these.

- ``copying``: one flow as curl, httpie, raw request/response, URL or JavaScript ``fetch``.
- ``har``, ``mitm``, ``saz``, ``jsonl``: each format's streaming writer (and reader, but jsonl).
- ``redact``: secrets out of flows and summaries before they leave.
- ``export`` and ``importer``: store → file and files → store.
"""

from __future__ import annotations


class ExchangeError(ValueError):
    """A file that cannot be read or written as asked; the message is one line meant for the user, naming the file
    and, where it applies, the entry."""
