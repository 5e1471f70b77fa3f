"""`pfgmctl tui`: a Textual dashboard that watches a run directory (no torch imports)."""
