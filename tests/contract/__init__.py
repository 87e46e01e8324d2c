"""Black-box conformance suite: checks docs/protocol.md and the commands from outside, sharing no code with the project."""
