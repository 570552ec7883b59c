"""Topologies, scenarios and measurement: the sample capture now; the in-memory wire, demo and netns lab later."""
