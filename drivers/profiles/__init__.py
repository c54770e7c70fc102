"""Device profiles (TOML data files), documented in docs/devices.md."""
