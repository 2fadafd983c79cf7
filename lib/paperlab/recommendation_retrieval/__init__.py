"""Chapters of the part 'recommendation-retrieval'; one module per paper."""
