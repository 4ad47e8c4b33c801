"""Key material."""
