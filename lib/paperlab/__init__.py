"""paperlab: the library behind the executable tutorial book.

Shared helpers (imported by every chapter):

- :mod:`paperlab.validation` -- input checks that raise clear errors;
- :mod:`paperlab.seeding` -- one call to make a chapter reproducible;
- :mod:`paperlab.plotting` -- the book's figure style and figure display with alt text;
- :mod:`paperlab.display` -- library source and results tables inside a notebook;
- :mod:`paperlab.timing` -- medians of repeated timings;
- :mod:`paperlab.kernels` -- Numba kernels, each with a plain reference.

Chapter implementations live in one module per paper, ``paperlab.<part>.<chapter>``.
"""

__version__ = "0.1.0"
