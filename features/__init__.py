"""The Feast feature repository (definitions, per-environment ``feature_store.yaml``) and the adapters that
read and write it: a freshness-checking online reader, the real-time event writer and a monotonic SQLite
online store. Definitions are built from :mod:`nextbest.core.features`, the one declaration of every feature.
"""
