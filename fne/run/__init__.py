"""The machinery of a search run: its config, driver, evaluators, progress, recorder and run directory."""
