"""Access control: principals, tokens, passwords, per-route role rules and HTTP hardening."""
