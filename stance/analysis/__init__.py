"""Articles: statements and speakers, and their check-worthiness, topics and stance toward targets."""
