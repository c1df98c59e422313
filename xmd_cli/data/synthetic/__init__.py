"""Generated demo datasets: synthetic-persons (faces + voices)."""
