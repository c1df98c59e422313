"""Generated demo datasets: synthetic-persons (faces + voices) and synthetic-captions."""
