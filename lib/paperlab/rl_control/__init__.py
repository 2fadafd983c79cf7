"""Chapters of the part 'rl-control'; one module per paper."""
