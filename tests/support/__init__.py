"""Helpers shared by several test packages: the real servers they need and a TCP proxy to cut them off."""
