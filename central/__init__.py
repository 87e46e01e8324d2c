"""Schulwart central."""
