"""leaderboard: validate dissection results and build the static leaderboard site."""
