"""Black-box conformance suite: checks DESIGN.md from outside, sharing no code with the project."""
