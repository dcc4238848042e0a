"""Choosing the response sent upstream when every branch has ended (RFC 3261 §16.7 step 6).

Part of step ⑥. Among the final responses collected (timeouts count as 408): any 6xx wins;
otherwise the lowest class, the first received within it. A chosen 503 is sent as 500
(§16.7: a proxy must not pass 503 upstream as its own; Kamailio's ``remap_503_500`` too).
"""

from __future__ import annotations


def best(codes: list[int]) -> int:
    """Index of the best final response among ``codes`` (non-empty)."""
    for i, code in enumerate(codes):
        if code >= 600:
            return i
    return min(range(len(codes)), key=lambda i: (codes[i] // 100, i))


def upstream_code(code: int) -> int:
    return 500 if code == 503 else code
