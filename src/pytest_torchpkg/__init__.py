"""pytest-torchpkg: prove that a test suite's models survive packaging."""
