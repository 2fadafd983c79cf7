"""Chapters of the part 'geometry-representations'; one module per paper."""
