"""Repository-level test configuration."""

pytest_plugins = ["pytester"]
