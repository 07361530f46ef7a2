"""The deployable model: a feature encoder plus LightGBM heads that score every action for a batch of
customers. Training builds it, MLflow stores it, serving loads it natively (no pyfunc on the hot path)."""
