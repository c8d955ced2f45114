"""Genotypes, op registries, cells, networks and search spaces."""
