"""Runners: bench (evaluate), train, perf. Console scripts live here."""
