"""A small model repository: what `make demo` packages and checks."""
