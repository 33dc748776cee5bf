"""Evaluation stage: generate answers with the base, reference and student models, score them, and turn the scores into PGR."""
