"""Shared I/O: storage that training, serving and analytics all use (the decision log). It imports the pure core
and nothing of features, training or serving."""
