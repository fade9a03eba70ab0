"""Reads of the analytics app, split by page: dashboard charts, expert load, knowledge gaps, inbox."""
