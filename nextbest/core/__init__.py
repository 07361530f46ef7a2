"""The pure decision core: catalog, feature declarations, rules, arbitration, policy metrics.

Nothing here imports Feast, MLflow or BentoML; training and serving both build on it.
"""
