"""Metrics over products: the sweep report (a table of every evaluated cell and PGR against dollars)."""
