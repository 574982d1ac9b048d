"""Rules that change traffic in flight (the model and its file) and throttle profiles."""
