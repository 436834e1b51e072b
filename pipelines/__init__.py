"""dchag's library: data preparation, the D-CHAG model, distributed training and evaluation.

Importable without the command line; `dchag_cli` is a thin skin over it.
"""

__version__ = "0.1.0"
