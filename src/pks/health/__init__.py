"""Beside the data path: gateway run-time state (operator set_state, probing)."""
