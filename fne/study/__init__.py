"""The validation study behind `plot_scores`: scores of benchmark architectures against their true accuracy."""
