"""nextbest: next-best-action decisioning on Feast, LightGBM, MLflow and BentoML."""

__version__ = "0.1.0"
