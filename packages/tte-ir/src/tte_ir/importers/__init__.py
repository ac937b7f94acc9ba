"""Importers that turn external model files into tte forward graphs."""

from tte_ir.importers.seed_pkl import SeedModelError, import_seed_pkl, load_seed_pkl

__all__ = ["SeedModelError", "import_seed_pkl", "load_seed_pkl"]
