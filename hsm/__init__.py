"""PKCS#11: find the token, make or find the key-encryption key, wrap and unwrap. Nothing else."""
