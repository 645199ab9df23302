"""Results store (per-image rows, summaries, manifests) and reports."""
