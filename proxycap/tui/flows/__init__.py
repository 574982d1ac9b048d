"""The flow list: its model (which flows, in what order, rows cached) and the widget that draws it."""
