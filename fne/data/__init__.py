"""Data: CIFAR-10 arrays and batches, its download, and ground-truth accuracy tables."""
