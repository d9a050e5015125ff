"""Datasets and datamodules of this domain: embedded sets built offline and readers of real data on disk."""
