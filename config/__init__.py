"""Configuration: the settings (FLP_* environment variables) and the secret files they point to.
A leaf: every layer but the domain may import it; it imports nothing of flp's."""
