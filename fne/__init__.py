"""fne: Fast Neural Evolution, training-free evolutionary neural architecture search."""

from fne.version import __version__

__all__ = ["__version__", "load_model", "score", "search", "search_loop"]


def load_model(path, device="cpu"):
    """Rebuild the network stored in an fne model file (see fne.export.load_model)."""
    # Imported on call: `import fne` (every command, `fne --help`) must not pay for torch.
    from fne.export import load_model as _load_model

    return _load_model(path, device)


def search(config=None, out=None, **options):
    """Run a search in one call and return its SearchResult (see fne.api.search)."""
    from fne import api

    return api.search(config, out, **options)


def search_loop(config):
    """The search loop of a SearchConfig, driven with ask()/tell() (see fne.api.evolution)."""
    from fne import api

    return api.search_loop(config)


def score(genotypes, space="nb201", **options):
    """Score a list of genotypes with the training-free heuristics: a DataFrame (see fne.api.score)."""
    from fne import api

    return api.score(genotypes, space, **options)
