"""Chapters of the part 'efficient-transformers'; one module per paper."""
