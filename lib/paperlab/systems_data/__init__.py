"""Chapters of the part 'systems-data'; one module per paper."""
