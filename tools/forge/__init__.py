"""Forges: where a task's branch becomes a pull request and is merged (local git, GitHub)."""
