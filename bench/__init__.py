"""Benchmarks: torchpkg against torch.package, torch.save/torch.load, safetensors and raw I/O.

Run ``make bench`` (or ``python -m bench --help``). Each workload runs every peer
side by side in one process, several rounds in rotated order; the report gives
the median, min and max of each row, its ratio to torchpkg, and the targets of
the performance issue with PASS/MISS. Nothing here is a test: timings are
printed, never asserted.
"""
