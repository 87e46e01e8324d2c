"""Schulwart agent."""
