"""Thin, fast primitives shared by the chain families: secp256k1 keys and hashes, BIP32/39, RLP, bech32.

Each is here rather than imported from bip-utils where that library's import (0.87 s on this machine)
or call overhead would land on the CLI start-up or the signing path; each has a differential test.
"""
