"""proxycap's mitmproxy addons; installed as ``proxycap.addons``, loadable with ``mitmdump -s``."""
