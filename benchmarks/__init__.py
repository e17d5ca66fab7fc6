"""Benchmarks of funcprune against torch.nn.utils.prune; run ``python -m benchmarks.run``."""
