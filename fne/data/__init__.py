"""Data: datasets of every supported format (datasets.py, DATASETS.md), their batches, CIFAR-10, ground truth."""
