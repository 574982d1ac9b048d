"""Captures out of the TUI and flows side by side: copy one flow (``copying``), export the view or its marked flows
(``exporting``), compare two flows (``comparing``), and the app's actions for them with the composer's (``actions``).
The formats themselves are ``proxycap.exchange``'s; this package is their screens and workers."""
