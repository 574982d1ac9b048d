"""Code that leans on mitmproxy's or Textual's internals, one module each, so an upgrade knows where to look; each has
a test that shows it behaves as the stock code (tests/test_internals_*.py)."""
