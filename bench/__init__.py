"""Benchmarks (``make bench``): each compares against a same-run baseline and reports ratios."""
