"""The water dashboard's web side: page, JSON API, bus bridge (see services/dashboard.py)."""
