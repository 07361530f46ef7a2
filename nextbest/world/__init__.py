"""A synthetic customer world whose true response to every action is known (see ``outcome``)."""
