"""Session fixtures for exported TFLite models (owned by the export module's tests)."""
