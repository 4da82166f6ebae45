"""Command-line glue for the ``broden`` subcommands (one module each)."""
