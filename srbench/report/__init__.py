"""The report: run directories → static HTML pages (leaderboard with CIs and paired p-values,
metric card, plots, failed jobs). ``srbench report`` is the command; this package is the work."""
