"""The BentoML decision service and its adapters (Feast features, MLflow models, the decision log)."""
