"""Chapters of the part 'generative-models'; one module per paper."""
