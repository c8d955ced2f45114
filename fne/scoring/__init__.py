"""Training-free scoring: the heuristics registry, the shared network probe, and fitness of genotypes."""
