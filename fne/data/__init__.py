"""Data: datasets of any supported format (datasets.py, DATASETS.md), their batches, CIFAR-10 arrays and download, ground truth."""
