"""proxycap: a Fiddler-style HTTP(S) debugging proxy for the terminal, on mitmproxy's engine."""

__version__ = "0.1.0"
