"""Judging a run: the digits in its images, and its frames against the twin's prediction."""
