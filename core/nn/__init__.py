"""Layer library: attention variants, positional encodings on coordinates, transformer blocks.

Imports only torch (and timm's layers); nothing here knows about Lightning, Hydra or a domain.
"""
