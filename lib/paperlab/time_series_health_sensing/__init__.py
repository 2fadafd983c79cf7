"""Chapters of the part 'time-series-health-sensing'; one module per paper."""
