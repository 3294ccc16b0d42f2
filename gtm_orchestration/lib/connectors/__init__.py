"""HTTP clients of the SaaS APIs the pipeline reads from and writes to."""
