"""Changing traffic in flight from the UI: breakpoints and the flows stopped at them, rules, throttling."""
