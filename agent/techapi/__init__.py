"""The technician's local API and page: offline-verified tokens, reads, acks and notes."""
