"""A/B variant: a 1 ms GIL switch interval instead of CPython's 5 ms, so the UI and engine threads wait less for
each other after every I/O wait (each re-acquisition of the GIL waits up to one interval for the other thread)."""
import sys

sys.setswitchinterval(0.001)
