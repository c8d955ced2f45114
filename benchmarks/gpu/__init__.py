"""The sections of benchmarks/gpu_check.py, one module each (common.py holds what they share)."""
