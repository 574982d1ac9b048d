"""proxycap's benchmark harness: throughput, latency, memory and UI responsiveness against mitmproxy's tools."""
