"""Command-line glue for the ``leaderboard`` subcommands (one module each)."""
