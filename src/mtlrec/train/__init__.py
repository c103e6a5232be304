"""Training: the loop and its callbacks."""
