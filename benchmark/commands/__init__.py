"""Command-line glue for the ``benchmark`` subcommands (one module each)."""
