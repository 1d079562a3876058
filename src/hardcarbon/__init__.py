"""hardcarbon: sodium storage in hard-carbon anodes with machine-learned force fields."""

from hardcarbon.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
