"""Schulwart sim."""
