"""Functions that change the world: they write, and they are the only code that does."""
