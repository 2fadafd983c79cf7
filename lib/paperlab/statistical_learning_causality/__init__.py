"""Chapters of the part 'statistical-learning-causality'; one module per paper."""
