"""Data, training-free fitness, genetic operators, selection and the search loop."""
