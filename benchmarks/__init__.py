"""Speed and scale benchmarks: ``python benchmarks/run.py [--quick]`` (see docs/speed.md)."""
