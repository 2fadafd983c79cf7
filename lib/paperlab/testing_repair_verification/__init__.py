"""Chapters of the part 'testing-repair-verification'; one module per paper."""
