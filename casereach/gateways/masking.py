"""Masking for logs: secrets never appear, phone numbers show only their ends (``core.masking``,
re-exported where the gateway types have always found it)."""

from __future__ import annotations

from casereach.core.masking import mask_number, mask_text

__all__ = ["mask_number", "mask_text"]
