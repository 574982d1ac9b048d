"""Query: mitmproxy filter expressions over stored flows (in SQL where the summaries answer them), views of stored
flows for lists, and the human formatting of summaries."""
