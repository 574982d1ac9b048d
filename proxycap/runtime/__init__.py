"""How the process runs: the garbage collector's settings and the interpreter's switch interval."""
