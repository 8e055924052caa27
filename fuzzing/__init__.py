"""Fuzz targets for wsio's parsers: each returns a result or raises a documented exception."""
