"""Beside the data path: operating a live proxy (HTTP API, kamcmd-style RPC)."""
