"""Benchmarks: each prints measured figures and the ratio against an anchor measured in the same run."""
