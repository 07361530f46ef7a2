"""Training jobs: build data sets (Feast point-in-time or your own file), fit propensity and uplift models,
evaluate them honestly off-policy, register them in MLflow and promote champions."""
