"""Capture: the proxy engine (mitmproxy, on its own thread) and what turns its flows into events on the bus:
summaries, flow snapshots, the log bridge and the CA. The only layer that runs mitmproxy."""
