"""The chrome around the list: filter bar, clients panel, status bar, key bar, and the screens over the main one."""
