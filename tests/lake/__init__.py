"""Tests of the ruvector-lake wheel (run against the installed wheel)."""
