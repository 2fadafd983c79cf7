"""Chapters of the part 'language-model-alignment-reasoning'; one module per paper."""
