"""Django's SQLite backend with its statement conversion cached (see ``base``)."""
