"""One module per kind of model spec; :func:`benchmark.models.loader.loaders` finds them all (see its docstring for
what a loader module defines)."""
