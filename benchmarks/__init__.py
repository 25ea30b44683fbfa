"""Benchmarks: scripts that print numbers, compared side by side with helm in the same run."""
