"""Getting clients onto the proxy: this machine's LAN addresses, the setup page, QR code and per-platform steps for
devices, and the environment, CA bundle and browser profiles for programs on this machine.

Used by the CLI (``proxycap setup/run/env/browser``), the TUI and the setup addon; imports only ``capture`` and
``paths`` (addons may import it).
"""
