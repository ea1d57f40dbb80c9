"""tp4emu."""
