"""Chapters of the part 'empirical-software-engineering'; one module per paper."""
