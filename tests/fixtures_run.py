"""Session fixtures for trained runs (owned by the training module's tests)."""
