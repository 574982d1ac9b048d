"""A/B variant for `proxycap tui`: drain the bus / poll the store 4x a second instead of 12x."""
import proxycap.tui.app as tui_app

tui_app.TICK = 0.25
