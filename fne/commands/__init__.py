"""Click commands of the fne CLI, one module each (registered in fne/cli.py)."""
