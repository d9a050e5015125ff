"""Hydra configs of the suite, shipped as package data (``pkg://conf``)."""
