"""The logged model: saving and logging it (with its wheel), the trust policy, loading it back, and its pyfunc."""
