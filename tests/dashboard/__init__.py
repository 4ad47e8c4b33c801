"""Dashboard tests: server-side checks in process, journeys in Chromium."""
